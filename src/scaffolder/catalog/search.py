"""The flattened search index of an entity (``buildEntitySearch``; CONTRACT §8.1).

Every leaf becomes a row ``(key, value)``: keys are lower-cased dot paths, values lower-cased
strings. Arrays are walked, and a string item ``s`` of the array at ``path`` also gives
``path.s = true``. Relations become ``relations.<type> = <targetRef>``. ``metadata.name``,
``namespace`` and ``uid`` are indexed even though the walk skips them; etags, status and
attachments are not. A key over 200 characters is left out; a value over 200 characters (or
a null) is indexed as null, so the key still "exists". Filters, ordering and facets all run
on these rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.catalog.errors import input_error
from scaffolder.catalog.model import DEFAULT_NAMESPACE

MAX_KEY_LENGTH = 200
MAX_VALUE_LENGTH = 200
_SPECIAL_KEYS = frozenset(
    {
        "attachments",
        "relations",
        "status",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.etag",
    }
)

#: One search row: (key, value, original value); the values are None together.
SearchRow = tuple[str, str | None, str | None]


def _js_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _traverse(root: Mapping[str, Any]) -> list[tuple[str, Any]]:
    output: list[tuple[str, Any]] = []
    seen_path_keys: set[str] = set()

    def visit(path: str, current: Any) -> None:
        if path in _SPECIAL_KEYS:
            return
        if current is None or isinstance(current, str | int | float | bool):
            output.append((path, current))
            return
        if isinstance(current, list):
            for item in current:
                visit(path, item)
                if isinstance(item, str):
                    path_key = f"{path}.{item}"
                    lower = path_key.lower()
                    if lower not in seen_path_keys:
                        seen_path_keys.add(lower)
                        output.append((path_key, True))
            return
        if isinstance(current, Mapping):
            for key, value in current.items():
                visit(f"{path}.{key}" if path else str(key), value)

    visit("", root)
    return output


def build_search_rows(entity: Mapping[str, Any]) -> list[SearchRow]:
    """The search rows of a stitched entity, de-duplicated, in traversal order.

    Raises:
        EntityError: when two keys differ only in case (upstream refuses such an entity).
    """
    raw = _traverse(entity)
    metadata = entity.get("metadata") or {}
    raw.append(("metadata.name", metadata.get("name")))
    raw.append(("metadata.namespace", metadata.get("namespace")))
    raw.append(("metadata.uid", metadata.get("uid")))
    if not metadata.get("namespace"):
        raw.append(("metadata.namespace", DEFAULT_NAMESPACE))
    for relation in entity.get("relations") or []:
        raw.append((f"relations.{relation['type']}", relation["targetRef"]))

    keys = {k for k, _ in raw}
    lower_keys = {k.lower() for k in keys}
    if len(keys) != len(lower_keys):
        remaining = set(lower_keys)
        difference = []
        for key in keys:
            lower = key.lower()
            if lower in remaining:
                remaining.discard(lower)
            else:
                difference.append(lower)
        joined = "', '".join(difference)
        raise input_error(f"Entity has duplicate keys that vary only in casing, '{joined}'")

    rows: list[SearchRow] = []
    seen: set[tuple[str, str | None]] = set()
    for raw_key, raw_value in raw:
        key = raw_key.lower()
        if len(key) > MAX_KEY_LENGTH:
            continue
        if raw_value is None:
            row: SearchRow = (key, None, None)
        else:
            original = _js_value(raw_value)
            value = original.lower()
            row = (key, value, original) if len(value) <= MAX_VALUE_LENGTH else (key, None, None)
        marker = (row[0], row[1])
        if marker in seen:
            continue
        seen.add(marker)
        rows.append(row)
    return rows

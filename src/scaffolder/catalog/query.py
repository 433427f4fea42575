"""Catalog queries: filter predicates and their SQL, ``filter``/``fields``/``order`` params.

A predicate is what ``POST /entities/by-query`` takes (CONTRACT §8.4)::

    {"kind": "component", "spec.type": {"$in": ["service", "website"]},
     "metadata.tags": {"$contains": "java"}, "relations": {"$contains": {"type": "ownedBy"}},
     "$not": ..., "$all": [...], "$any": [...]}

``filter=kind=component,spec.type=service`` query params become the same predicates. Each
field condition is a membership test in a sub-select of the search index (``catalog_search``,
indexed on key, value and entity), so every filter is answered from that index, never by
loading entities.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from scaffolder.catalog.model import js_str
from scaffolder.errors import InputError

Predicate = dict[str, Any]
_OPERATORS = ("$exists", "$in", "$contains", "$hasPrefix")


# --- filter params ---------------------------------------------------------------------------


def _field_predicate(key: str, values: list[str] | None) -> Predicate:
    if values is None:
        return {key: {"$exists": True}}
    if len(values) == 1:
        return {key: values[0]}
    return {key: {"$in": values}}


def parse_filter_params(raw_filters: Sequence[str]) -> Predicate | None:
    """``filter`` params as a predicate (``parseEntityFilterParams``).

    Statements of one ``filter`` are ANDed, the same key twice ORs its values, and separate
    ``filter`` params are ORed.

    Raises:
        InputError: for a statement with an empty key.
    """
    outer: list[Predicate] = []
    for raw in raw_filters:
        statements = [s.strip() for s in raw.split(",") if s.strip()]
        if not statements:
            continue
        by_key: dict[str, list[str] | None] = {}
        for statement in statements:
            key, sep, value = statement.partition("=")
            key = key.strip() if sep else statement
            if not key:
                raise InputError(
                    f"Invalid filter, '{statement}' is not a valid statement (expected a "
                    "string on the form a=b or a= or a)"
                )
            if key not in by_key:
                by_key[key] = None
            if sep:
                by_key[key] = [*(by_key[key] or []), value.strip()]
        predicates = [_field_predicate(k, v) for k, v in by_key.items()]
        outer.append(predicates[0] if len(predicates) == 1 else {"$all": predicates})
    if not outer:
        return None
    return outer[0] if len(outer) == 1 else {"$any": outer}


# --- predicate validation (the zod schema of @backstage/filter-predicates) ------------------


def _is_primitive(value: Any) -> bool:
    return isinstance(value, str | bool | int | float)


def validate_predicate(value: Any, path: str = "") -> Predicate:
    """A predicate as the filter-predicates schema accepts it, operators stripped of extras.

    Raises:
        InputError: ``Validation error: ...`` (callers add their own prefix).
    """
    where = f"{path}." if path else ""
    if not isinstance(value, dict):
        raise InputError(f'Validation error: Expected object, received {_type(value)} at "{path}"')
    logical = [k for k in value if k in ("$all", "$any", "$not")]
    if logical and len(logical) == 1 and _logical_shape_ok(logical[0], value[logical[0]]):
        extra = [k for k in value if k != logical[0]]
        if extra:
            keys = ", ".join(f"'{k}'" for k in extra)
            raise InputError(f"Validation error: Unrecognized key(s) in object: {keys}")
        op = logical[0]
        if op == "$not":
            return {"$not": validate_predicate(value[op], f"{where}$not")}
        return {op: [validate_predicate(p, f"{where}{op}[{i}]") for i, p in enumerate(value[op])]}
    out: Predicate = {}
    for key, item in value.items():
        if key.startswith("$") or "\n" in key[:1] or "\r" in key[:1]:
            raise InputError(f'Validation error: Invalid at "{where}{key}"')
        out[key] = _value_predicate(item, f"{where}{key}")
    return out


def _logical_shape_ok(op: str, value: Any) -> bool:
    return isinstance(value, dict) if op == "$not" else isinstance(value, list)


def _value_predicate(value: Any, path: str) -> Any:
    if _is_primitive(value):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("$exists"), bool):
            return {"$exists": value["$exists"]}
        if isinstance(value.get("$in"), list) and all(_is_primitive(v) for v in value["$in"]):
            return {"$in": value["$in"]}
        if "$contains" in value:
            target = value["$contains"]
            if _is_primitive(target):
                return {"$contains": target}
            if isinstance(target, dict):
                try:
                    return {"$contains": validate_predicate(target, f"{path}.$contains")}
                except InputError:
                    pass
        if isinstance(value.get("$hasPrefix"), str):
            return {"$hasPrefix": value["$hasPrefix"]}
    raise InputError(f'Validation error: Invalid at "{path}"')


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def parse_query(value: Any, prefix: str = "Invalid query: ") -> Predicate:
    """`validate_predicate` with a route's error prefix."""
    try:
        return validate_predicate(value)
    except InputError as exc:
        raise InputError(f"{prefix}{exc.message}") from None


# --- predicate -> SQL ------------------------------------------------------------------------


def _lower(value: Any) -> str:
    return js_str(value).lower()


def _like_prefix(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class SqlFilter:
    """Compiles a predicate to a SQL condition on an entity id column, with parameters."""

    def __init__(self, entity_id: str = "e.id") -> None:
        self.entity_id = entity_id
        self.params: list[Any] = []

    def _exists(self, condition: str, params: Sequence[Any], negate: bool = False) -> str:
        # `id IN (subquery)` rather than a correlated EXISTS: SQLite builds the (usually
        # short) list of matching ids once from the (key, value) index, then tests
        # membership, instead of probing the index once per candidate entity.
        self.params.extend(params)
        return (
            f"{self.entity_id} {'NOT IN' if negate else 'IN'} "
            f"(SELECT s.entity_id FROM catalog_search s WHERE {condition})"
        )

    def compile(self, predicate: Mapping[str, Any]) -> str:
        """The SQL condition for ``predicate`` (parameters accumulate in ``params``)."""
        if "$not" in predicate and len(predicate) == 1:
            return f"NOT ({self.compile(predicate['$not'])})"
        if "$all" in predicate and len(predicate) == 1:
            parts = [self.compile(p) for p in predicate["$all"]]
            return "(" + " AND ".join(parts) + ")" if parts else "1 = 1"
        if "$any" in predicate and len(predicate) == 1:
            parts = [self.compile(p) for p in predicate["$any"]]
            return "(" + " OR ".join(parts) + ")" if parts else "1 = 0"
        if not predicate:
            return "1 = 1"
        parts = [self._field(key.lower(), value) for key, value in predicate.items()]
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def _field(self, key: str, value: Any) -> str:
        if _is_primitive(value):
            return self._exists("s.key = ? AND s.value = ?", [key, _lower(value)])
        if isinstance(value, Mapping):
            if "$exists" in value:
                return self._exists("s.key = ?", [key], negate=not value["$exists"])
            if "$in" in value:
                return self._in(key, [_lower(v) for v in value["$in"]])
            if "$hasPrefix" in value:
                return self._exists(
                    "s.key = ? AND s.value LIKE ? ESCAPE '\\'",
                    [key, _like_prefix(str(value["$hasPrefix"]))],
                )
            if "$contains" in value:
                return self._contains(key, value["$contains"])
        raise InputError(
            f'Invalid filter predicate value for field "{key}": expected a primitive value, '
            f"$exists, $in, $hasPrefix, or $contains operator, but got {json.dumps(value)}"
        )

    def _in(self, key: str, values: list[str]) -> str:
        if not values:
            return "1 = 0"
        marks = ", ".join("?" for _ in values)
        return self._exists(f"s.key = ? AND s.value IN ({marks})", [key, *values])

    def _contains(self, key: str, target: Any) -> str:
        if _is_primitive(target):
            return self._exists("s.key = ? AND s.value = ?", [key, _lower(target)])
        if isinstance(target, Mapping):
            if key != "relations":
                raise InputError(f'Object form of $contains is not supported for field "{key}"')
            return self._contains_relation(target)
        raise InputError(f'Unsupported $contains target for field "{key}": {json.dumps(target)}')

    def _contains_relation(self, target: Mapping[str, Any]) -> str:
        kind: str | None = None
        refs: list[str] | None = None
        for raw_key, value in target.items():
            key = raw_key.lower()
            if key == "type":
                if not isinstance(value, str):
                    raise InputError(
                        'The $contains operator for "relations" requires a "type" string property'
                    )
                kind = value
            elif key == "targetref":
                refs = _relation_targets(value)
            else:
                raise InputError(
                    f'Unsupported key "{raw_key}" in $contains for "relations". Only "type" '
                    'and "targetRef" are supported'
                )
        if not kind:
            raise InputError(
                'The $contains operator for "relations" requires a "type" string property'
            )
        relation_key = f"relations.{kind.lower()}"
        if refs is None:
            return self._exists("s.key = ?", [relation_key])
        return self._in(relation_key, refs)


def _relation_targets(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.lower()]
    if (
        isinstance(value, Mapping)
        and list(value) == ["$in"]
        and isinstance(value["$in"], list)
        and all(isinstance(v, str) for v in value["$in"])
    ):
        if not value["$in"]:
            raise InputError('Empty "$in" array for $contains on "relations" is not allowed')
        return [v.lower() for v in value["$in"]]
    raise InputError(
        'Unsupported value in $contains for "relations": expected a string or '
        f'{{ "$in": [strings] }}, but got {json.dumps(value)}'
    )


# --- fields (projection) ---------------------------------------------------------------------

Projection = Callable[[Mapping[str, Any]], dict[str, Any]]


def parse_fields(raw: Sequence[str], extra: Sequence[str] = ()) -> Projection | None:
    """``fields`` as a projection (``parseEntityTransformParams``), or None for all.

    Raises:
        InputError: for a field with ``[``.
    """
    fields: list[str] = []
    for item in [*extra, *(f for r in raw for f in r.split(","))]:
        item = item.strip()
        if item and item not in fields:
            fields.append(item)
    if not fields:
        return None
    for item in fields:
        if "[" in item:
            raise InputError(f'Invalid field "{item}", array type fields are not supported')

    def project(entity: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in fields:
            path, value = _path_and_value(entity, item)
            if value is _MISSING:
                continue
            target = out
            for key in path[:-1]:
                child = target.get(key)
                if not isinstance(child, dict):
                    child = {}
                    target[key] = child
                target = child
            target[path[-1]] = value
        return out

    return project


_MISSING = object()


def _path_and_value(entity: Mapping[str, Any], field: str) -> tuple[list[str], Any]:
    """lodash's walk: a part that is not a key joins the next one (keys may hold dots)."""
    parts = field.split(".")
    path: list[str] = []
    node: Any = entity
    index = 0
    while index < len(parts):
        part = parts[index]
        if isinstance(node, Mapping) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            path.append(part)
            node = node[int(part)]
        elif index + 1 < len(parts):
            parts[index + 1] = f"{part}.{parts[index + 1]}"
        else:
            return path, _MISSING
        index += 1
    if node is None and not path:
        return path, _MISSING
    return path, node


# --- cursors ---------------------------------------------------------------------------------


def encode_cursor(value: Mapping[str, Any]) -> str:
    """Base64 of the JSON (``Buffer.from(JSON.stringify(c)).toString('base64')``)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode()).decode()


def decode_json_base64(value: str) -> Any:
    """The JSON inside a base64 cursor.

    Raises:
        ValueError: when it is not base64 of JSON.
    """
    try:
        padded = value + "=" * (-len(value) % 4)
        return json.loads(base64.b64decode(padded, validate=False).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from exc

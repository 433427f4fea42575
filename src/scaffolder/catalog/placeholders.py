"""``$text``, ``$json`` and ``$yaml`` placeholders (PlaceholderProcessor).

``definition: {$text: ./openapi.yaml}`` in an API entity is replaced by the file's text before
the entity is validated. Relative paths resolve against the entity's own location; URLs are
read with the same allow-list as locations (and, through an integration, only from the same
host). In a ``file`` location a relative path may not leave the catalog file's directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from scaffolder.catalog.errors import EntityError, plain_error
from scaffolder.catalog.model import LocationSpec
from scaffolder.catalog.parsing import parse_yaml_documents

RESOLVERS = ("text", "json", "yaml")

#: Reads a placeholder's value (relative to the entity's location) and returns its bytes.
Reader = Callable[[str], bytes]


class PlaceholderRefused(EntityError):
    """A placeholder that may not be read at all (not a failed read)."""


def _placeholder(value: Any) -> tuple[str, Any] | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (key,) = value
    if not isinstance(key, str) or not key.startswith("$") or key[1:] not in RESOLVERS:
        return None
    return key[1:], value[key]


def resolve_placeholders(entity: Any, location: LocationSpec, read: Reader) -> Any:
    """``entity`` with every placeholder replaced by what it names (the same object when
    there is none).

    Raises:
        EntityError: upstream's ``Placeholder $<key> ...`` errors.
    """
    found = _placeholder(entity)
    if found is not None:
        return _resolve(found[0], found[1], location, read)
    if isinstance(entity, list):
        items = [resolve_placeholders(item, location, read) for item in entity]
        return entity if all(a is b for a, b in zip(items, entity, strict=True)) else items
    if isinstance(entity, dict) and not any(str(k).startswith("$") for k in entity):
        values = {k: resolve_placeholders(v, location, read) for k, v in entity.items()}
        return entity if all(values[k] is v for k, v in entity.items()) else values
    return entity


def stand_in_placeholders(entity: Any) -> Any:
    """``entity`` with placeholders replaced by stand-ins, for validation without reading."""
    found = _placeholder(entity)
    if found is not None:
        return f"${found[0]} placeholder" if found[0] == "text" else {}
    if isinstance(entity, list):
        return [stand_in_placeholders(item) for item in entity]
    if isinstance(entity, dict):
        return {k: stand_in_placeholders(v) for k, v in entity.items()}
    return entity


def _resolve(key: str, value: Any, location: LocationSpec, read: Reader) -> Any:
    if not isinstance(value, str):
        raise plain_error(
            f"Placeholder ${key} expected a string value parameter, in the form of an "
            "absolute URL or a relative path"
        )
    try:
        data = read(value)
    except PlaceholderRefused:
        raise
    except EntityError as exc:
        raise plain_error(f"Placeholder ${key} could not read location {value}, {exc}") from None
    content = data.decode("utf-8", errors="replace")
    if key == "text":
        return content
    if key == "json":
        try:
            return json.loads(content)
        except json.JSONDecodeError as exc:
            raise plain_error(
                f"Placeholder $json failed to parse JSON data at {value}, SyntaxError: {exc}"
            ) from None
    try:
        documents = parse_yaml_documents(data)
    except ValueError as exc:
        raise plain_error(
            f"Placeholder $yaml failed to parse YAML data at {value}, YAMLParseError: {exc}"
        ) from None
    if len(documents) != 1:
        raise plain_error(
            f"Placeholder $yaml expected to find exactly one document of data at {value}, "
            f"found {len(documents)}"
        )
    return documents[0]


def inside(base_dir: str, path: str) -> bool:
    """Whether ``path`` stays inside ``base_dir`` (after normalizing)."""
    base = os.path.normpath(base_dir)
    target = os.path.normpath(path)
    return target == base or target.startswith(base.rstrip(os.sep) + os.sep)

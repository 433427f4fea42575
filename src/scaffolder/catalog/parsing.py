"""Multi-document ``catalog-info.yaml`` parsing: YAML 1.2 scalars, guarded against bombs.

Upstream parses with the ``yaml`` package (YAML 1.2 core schema), so ``on``, ``yes`` and
``2024-01-01`` stay strings; PyYAML's 1.1 resolvers would turn them into booleans and dates.
Aliases are allowed (catalog files use anchors), but their expansion is bounded: a document
whose aliased content would expand past `MAX_EXPANDED_NODES` nodes is refused, as is a
recursive one, before anything walks or serializes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from scaffolder.catalog.errors import EntityError, plain_error
from scaffolder.catalog.model import LocationSpec

#: Files larger than this are not parsed (upstream has no limit; 5 MB holds any sane catalog).
MAX_FILE_BYTES = 5 * 1024 * 1024
#: Nodes a document may expand to through aliases (a "billion laughs" bound).
MAX_EXPANDED_NODES = 100_000

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Yaml12Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader with the YAML 1.2 core schema's implicit scalars."""


_Yaml12Loader.yaml_implicit_resolvers = {}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _construct_float(loader: Any, node: yaml.ScalarNode) -> float | int | None:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(("inf", "nan")):
        return None  # JSON.stringify writes NaN and Infinity as null
    value = float(text)
    # JavaScript has one number type: `1.0` is 1 (and is written back as 1).
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _construct_str(loader: Any, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
# Explicit !!timestamp / !!binary tags stay text (JSON has neither).
_Yaml12Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:binary", _construct_str)


@dataclass(frozen=True, kw_only=True)
class ParseResult:
    """One document of a file: an entity (an object) or an error, read at ``location``."""

    location: LocationSpec
    entity: dict[str, Any] | None = None
    error: EntityError | None = None


def _expanded_size(root: Any) -> int:
    """Nodes ``root`` would have written out in full; raises ValueError on a cycle or a bomb."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ValueError("recursive aliases are not supported")
        active.add(key)
        children = value.values() if isinstance(value, dict) else value
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                raise ValueError("Excessive alias count indicates a resource exhaustion attack")
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _plain(value: Any) -> Any:
    """An unshared JSON-safe copy (aliases become separate values, keys become strings)."""
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def parse_entity_yaml(data: bytes, location: LocationSpec) -> Iterator[ParseResult]:
    """``parseEntityYaml``: each object document as an entity; other documents as errors.

    ``null`` documents are skipped. A syntax error ends the file: the documents before it are
    returned, then one error (CONTRACT §9.6 wording).
    """
    if len(data) > MAX_FILE_BYTES:
        yield ParseResult(
            location=location,
            error=plain_error(
                f"Failed to parse YAML at {location.key}, the file is {len(data)} bytes, "
                f"more than the {MAX_FILE_BYTES} bytes allowed"
            ),
        )
        return
    text = data.decode("utf-8", errors="replace")
    loader = _Yaml12Loader(text)
    try:
        while loader.check_data():
            try:
                document = loader.get_data()
            except (yaml.YAMLError, ValueError, RecursionError) as exc:
                yield ParseResult(
                    location=location,
                    error=plain_error(f"YAML error at {location.key}, {_yaml_message(exc)}"),
                )
                return
            if document is None:
                continue
            try:
                _expanded_size(document)
                document = _plain(document)
            except ValueError as exc:
                yield ParseResult(
                    location=location, error=plain_error(f"YAML error at {location.key}, {exc}")
                )
                continue
            if isinstance(document, dict):
                yield ParseResult(location=location, entity=document)
            else:
                yield ParseResult(
                    location=location,
                    error=plain_error(f"Expected object at root, got {_js_type(document)}"),
                )
    except yaml.YAMLError as exc:
        yield ParseResult(
            location=location,
            error=plain_error(f"YAML error at {location.key}, {_yaml_message(exc)}"),
        )
    finally:
        loader.dispose()


def parse_yaml_documents(data: bytes) -> list[Any]:
    """Every non-null document of ``data`` (any type), with the same guards.

    Raises:
        ValueError: for a syntax error, a file too large, or an alias bomb.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"the data is more than the {MAX_FILE_BYTES} bytes allowed")
    loader = _Yaml12Loader(data.decode("utf-8", errors="replace"))
    documents = []
    try:
        while loader.check_data():
            document = loader.get_data()
            if document is not None:
                _expanded_size(document)
                documents.append(_plain(document))
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(_yaml_message(exc)) from None
    finally:
        loader.dispose()
    return documents


def _yaml_message(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _js_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"

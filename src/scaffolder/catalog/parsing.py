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


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


def _scalar(node: yaml.ScalarNode) -> Any:
    text = node.value
    tag = node.tag
    if tag == _INT:
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if tag == _FLOAT:
        if text.lower().endswith(("inf", "nan")):
            return None  # JSON.stringify writes NaN and Infinity as null
        value = float(text)
        # JavaScript has one number type: `1.0` is 1 (and is written back as 1).
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if tag == _BOOL:
        return text in ("true", "True", "TRUE")
    if tag == _NULL:
        return None
    # Strings, and explicit tags (!!str, !!timestamp, custom ones) keep their text.
    return text


def _key(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


class _Builder:
    """Builds plain JSON values from composed nodes, expanding aliases within a budget.

    PyYAML's constructor costs twice what composing does; this walk is a third of it. Each
    alias is expanded into its own copy (JSON has no sharing), so the node count is bounded:
    past `MAX_EXPANDED_NODES` the document is refused, and a recursive alias is an error.
    """

    def __init__(self) -> None:
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        self.count += 1
        if self.count > MAX_EXPANDED_NODES:
            raise ValueError("Excessive alias count indicates a resource exhaustion attack")
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        key = id(node)
        if key in self.active:
            raise ValueError("recursive aliases are not supported")
        self.active.add(key)
        try:
            if isinstance(node, yaml.MappingNode):
                return {_key(self.build(k)): self.build(v) for k, v in node.value}
            return [self.build(item) for item in node.value]
        finally:
            self.active.discard(key)


class _Refused(ValueError):
    """A document that was parsed but may not be built (yielded, not raised)."""


def _documents(data: bytes) -> Iterator[Any]:
    """Each document of ``data`` as a plain value (None for an empty one, `_Refused` for a
    bomb or a recursive alias).

    Raises:
        yaml.YAMLError: for a syntax error (after the documents before it).
    """
    loader = _Yaml12Loader(data.decode("utf-8", errors="replace"))
    try:
        while loader.check_node():
            node = loader.get_node()
            try:
                yield None if node is None else _Builder().build(node)
            except ValueError as exc:
                yield _Refused(str(exc))
    finally:
        loader.dispose()


@dataclass(frozen=True, kw_only=True)
class ParseResult:
    """One document of a file: an entity (an object) or an error, read at ``location``."""

    location: LocationSpec
    entity: dict[str, Any] | None = None
    error: EntityError | None = None


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
    documents = _documents(data)
    while True:
        try:
            document = next(documents)
        except StopIteration:
            return
        except (yaml.YAMLError, RecursionError) as exc:
            yield ParseResult(
                location=location,
                error=plain_error(f"YAML error at {location.key}, {_yaml_message(exc)}"),
            )
            return
        if isinstance(document, _Refused):
            yield ParseResult(
                location=location, error=plain_error(f"YAML error at {location.key}, {document}")
            )
            continue
        if document is None:
            continue
        if isinstance(document, dict):
            yield ParseResult(location=location, entity=document)
        else:
            yield ParseResult(
                location=location,
                error=plain_error(f"Expected object at root, got {_js_type(document)}"),
            )


def parse_yaml_documents(data: bytes) -> list[Any]:
    """Every non-null document of ``data`` (any type), with the same guards.

    Raises:
        ValueError: for a syntax error, a file too large, or an alias bomb.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"the data is more than the {MAX_FILE_BYTES} bytes allowed")
    try:
        documents = [d for d in _documents(data) if d is not None]
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(_yaml_message(exc)) from None
    for document in documents:
        if isinstance(document, _Refused):
            raise document
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

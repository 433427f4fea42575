"""Every problem of a catalog file, each with the field it is about (``scaffolder catalog
validate``).

The catalog stops at an entity's first error, as upstream does; an author fixing a file wants
them all at once. So each document goes through the same checks in the same order (the
envelope, the ``Entity`` schema, the field formats, its kind's schema), and every failure of
the stage that fails is reported; later stages need the earlier ones to pass. Messages are
the catalog's own, without the pointer to the file format documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaffolder.catalog import ajv
from scaffolder.catalog.errors import EntityError
from scaffolder.catalog.model import LocationSpec, stringify_ref
from scaffolder.catalog.parsing import parse_entity_yaml
from scaffolder.catalog.placeholders import stand_in_placeholders
from scaffolder.catalog.validation import (
    field_format_errors,
    kind_schema_errors,
    validate_kind,
)

_HELP = " To learn more about catalog file format"
#: Fields of `field_format_errors` that live under ``metadata``.
_METADATA_FIELDS = ("labels.", "annotations.", "tags.", "links.")


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One problem: the document (1-based, empty documents not counted), its entity's ref
    when it has one, the field (``metadata.name``, ``spec.lifecycle``; ``<document>`` for the
    document as a whole) and the catalog's message."""

    document: int
    ref: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"document {self.document}" + (f" ({self.ref})" if self.ref else "")
        return f"{where}: {self.field}: {self.message}"


def file_problems(path: Path) -> list[Problem]:
    """Every problem of the catalog file at ``path``.

    Raises:
        OSError: the file cannot be read.
    """
    location = LocationSpec(type="file", target=str(path.absolute()))
    problems: list[Problem] = []
    for index, parsed in enumerate(parse_entity_yaml(path.read_bytes(), location), start=1):
        if parsed.error is not None:
            problems.append(
                Problem(document=index, ref=None, field="<document>", message=parsed.error.message)
            )
            continue
        assert parsed.entity is not None
        ref = _ref(parsed.entity)
        problems += [
            Problem(document=index, ref=ref, field=field, message=message)
            for field, message in entity_problems(parsed.entity)
        ]
    return problems


def entity_problems(entity: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, message)`` for every problem of one entity.

    The envelope and the ``Entity`` schema must pass for the rest to be checked; the field
    formats and the kind's schema are then both checked.
    """
    entity = stand_in_placeholders(dict(entity))
    envelope = ajv.validate(ajv.schema("EntityEnvelope"), entity)
    if envelope:
        return [(_field(e), _ajv_message(e)) for e in envelope]
    schema = ajv.validate(ajv.schema("Entity"), entity)
    if schema:
        return [(_field(e), _ajv_message(e)) for e in schema]
    found = [(_metadata_field(f), _message(error)) for f, error in field_format_errors(entity)]
    kind_errors = kind_schema_errors(entity)
    if kind_errors:
        found += [(_field(e), _ajv_message(e)) for e in kind_errors]
    elif kind_errors is None:
        try:
            validate_kind(entity)
        except EntityError as exc:
            found.append(("apiVersion", _message(exc)))
    return found


def _ref(entity: dict[str, Any]) -> str | None:
    metadata = entity.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace")
    return stringify_ref(
        str(entity.get("kind")), namespace if isinstance(namespace, str) else None, metadata["name"]
    )


def _field(error: ajv.AjvError) -> str:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in error.instance_path.split("/")[1:]]
    for param in ("missingProperty", "additionalProperty"):
        if param in error.params:
            parts.append(str(error.params[param]))
    return ".".join(parts) or "<root>"


def _ajv_message(error: ajv.AjvError) -> str:
    params = ", ".join(f"{k}: {v}" for k, v in error.params.items())
    return f"{error.message} ({params})" if params else error.message


def _metadata_field(field: str) -> str:
    return f"metadata.{field}" if field.startswith(_METADATA_FIELDS) else field


def _message(error: EntityError) -> str:
    innermost = error
    while innermost.cause is not None:
        innermost = innermost.cause
    return innermost.message.split(_HELP)[0]

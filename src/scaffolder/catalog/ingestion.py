"""Reading one catalog file outside the engine (the CLI and tests use it).

The engine that ingests and refreshes locations is `scaffolder.catalog.service`; this reads a
single local file the way a ``file`` location would, without storing anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaffolder.catalog.model import ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, LocationSpec
from scaffolder.catalog.parsing import parse_entity_yaml
from scaffolder.catalog.validation import validate_entity
from scaffolder.errors import InputError


def read_entities(path: Path) -> list[dict[str, Any]]:
    """The entities of a multi-document YAML file, annotated with its location and validated.

    Raises:
        InputError: when the file cannot be read or parsed, or an entity is invalid.
    """
    location = LocationSpec(type="file", target=str(Path(path).absolute()))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"file {location.target} could not be read, {exc}") from exc
    entities = []
    for parsed in parse_entity_yaml(data, location):
        if parsed.error is not None:
            raise InputError(parsed.error.message)
        assert parsed.entity is not None
        entity = parsed.entity
        metadata = entity.setdefault("metadata", {})
        if isinstance(metadata, dict):
            annotations = metadata.setdefault("annotations", {})
            if isinstance(annotations, dict):
                annotations.setdefault(ANNOTATION_LOCATION, location.key)
                annotations.setdefault(ANNOTATION_ORIGIN_LOCATION, location.key)
        validate_entity(entity)
        entities.append(entity)
    return entities

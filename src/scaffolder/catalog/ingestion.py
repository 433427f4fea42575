"""Reading entities from ``catalog.locations`` (``file`` targets, globs allowed)."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from scaffolder.catalog.store import SqlCatalogStore
from scaffolder.catalog.validation import validate_entity
from scaffolder.errors import InputError
from scaffolder.settings import CatalogLocation

log = logging.getLogger(__name__)


def read_entities(path: Path) -> list[dict[str, Any]]:
    """Parse a multi-document YAML file into entities annotated with their location.

    Raises:
        InputError: when the file cannot be parsed or an entity is invalid.
    """
    key = f"file:{path}"
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"Failed to parse YAML at {key}, {exc}") from exc
    entities = []
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise InputError(f"Expected object at root, got {type(document).__name__}")
        metadata = document.setdefault("metadata", {})
        if isinstance(metadata, dict):
            annotations = metadata.setdefault("annotations", {})
            if isinstance(annotations, dict):
                annotations.setdefault("backstage.io/managed-by-location", key)
                annotations.setdefault("backstage.io/managed-by-origin-location", key)
        validate_entity(document)
        entities.append(document)
    return entities


def expand_file_target(target: str) -> list[Path]:
    """The files a ``file`` location's target names (a path or a glob)."""
    if glob.has_magic(target):
        return sorted(Path(p).absolute() for p in glob.glob(target, recursive=True))
    path = Path(target).absolute()
    return [path] if path.is_file() else []


def ingest_locations(store: SqlCatalogStore, locations: Iterable[CatalogLocation]) -> int:
    """Read every configured location into the store; returns how many entities were read.

    A file that fails to parse or validate is logged and left out; the others still load.
    """
    count = 0
    for location in locations:
        if location.type != "file":
            log.warning("catalog location type %r is not supported yet; skipped", location.type)
            continue
        files = expand_file_target(location.target)
        if not files:
            log.warning("catalog location %s matched no file", location.target)
        for path in files:
            try:
                entities = read_entities(path)
            except InputError as exc:
                log.error("catalog location file:%s: %s", path, exc.message)
                continue
            store.replace_location(f"file:{path}", entities)
            count += len(entities)
    return count

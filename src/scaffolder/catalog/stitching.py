"""Stitching: the entity the API serves, built from its processed form (``performStitching``).

The stitched entity is the processed entity plus:

* ``backstage.io/orphan: "true"`` when nothing emits it any more (``orphanStrategy: keep``);
* ``relations``: every relation whose source it is, sorted by type then target;
* ``status.items``: the errors of its last processing, when there were any;
* ``metadata.etag``: the SHA-1 of the stable JSON of all of the above (uid included), so it
  changes exactly when the served entity does. The uid itself is kept for the life of the
  entity.

Entities are serialized once, here, compactly and in upstream's key order; the API splices
these bytes into its responses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scaffolder.catalog.errors import EntityError
from scaffolder.catalog.model import (
    ANNOTATION_EDIT_URL,
    ANNOTATION_ORPHAN,
    ANNOTATION_VIEW_URL,
    STATUS_PROCESSING_TYPE,
    is_script_url,
)

REJECTED_URL = "https://backstage.io/annotation-rejected-for-security-reasons"


def to_json(value: Any) -> str:
    """``JSON.stringify``: compact, key order kept, non-ASCII as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def stable_hash(value: Any) -> str:
    """SHA-1 hex of ``fast-json-stable-stringify`` (keys sorted at every level)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - an etag, not security


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Stitched:
    """A stitched entity: its served JSON, hash and etag, and the entity itself."""

    entity: dict[str, Any]
    json: str
    hash: str
    etag: str


def stitch(
    processed: Mapping[str, Any],
    *,
    relations: Iterable[tuple[str, str]],
    errors: Iterable[EntityError] = (),
    orphan: bool = False,
) -> Stitched:
    """Build the served entity from the processed one (which carries its uid)."""
    entity = _copy(dict(processed))
    metadata = entity["metadata"]
    if orphan:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), ANNOTATION_ORPHAN: "true"}
    status_items = [
        {
            "type": STATUS_PROCESSING_TYPE,
            "level": "error",
            "message": str(error),
            "error": error.to_json(),
        }
        for error in errors
    ]
    annotations = metadata.get("annotations") or {}
    for key in (ANNOTATION_VIEW_URL, ANNOTATION_EDIT_URL):
        value = annotations.get(key)
        if isinstance(value, str) and is_script_url(value):
            annotations[key] = REJECTED_URL
    entity["relations"] = [{"type": t, "targetRef": r} for t, r in sorted(set(relations))]
    if status_items:
        status = dict(entity.get("status") or {})
        status["items"] = [*(status.get("items") or []), *status_items]
        entity["status"] = status
    digest = stable_hash(entity)
    etag = metadata.get("etag") or digest
    metadata["etag"] = etag
    return Stitched(entity=entity, json=to_json(entity), hash=digest, etag=str(etag))

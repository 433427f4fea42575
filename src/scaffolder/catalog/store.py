"""The embedded catalog's entity store."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from scaffolder.catalog.model import entity_ref_of
from scaffolder.db.engine import write_connection
from scaffolder.db.tables import catalog_entities
from scaffolder.tasks.model import utcnow

#: One filter: each key maps to the values it may have (None = the key must exist).
Filter = Mapping[str, Sequence[str | None]]


class SqlCatalogStore:
    """Entities by ref, grouped by the location they were read from."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def replace_location(self, location_key: str, entities: Iterable[dict[str, Any]]) -> None:
        """Make ``entities`` exactly what ``location_key`` holds (keeping known uids)."""
        now = utcnow()
        with write_connection(self._engine) as conn:
            existing = {
                row.entity_ref: row.uid
                for row in conn.execute(
                    sa.select(catalog_entities.c.entity_ref, catalog_entities.c.uid)
                )
            }
            keep: list[str] = []
            for entity in entities:
                ref = entity_ref_of(entity)
                key = str(ref)
                uid = existing.get(key) or str(uuid.uuid4())
                body = _stitch(entity, uid)
                values = {
                    "uid": uid,
                    "kind": ref.kind.lower(),
                    "namespace": ref.namespace.lower(),
                    "name": ref.name,
                    "etag": body["metadata"]["etag"],
                    "location_key": location_key,
                    "entity": json.dumps(body, separators=(",", ":")),
                    "updated_at": now,
                }
                if key in existing:
                    conn.execute(
                        catalog_entities.update()
                        .where(catalog_entities.c.entity_ref == key)
                        .values(**values)
                    )
                else:
                    conn.execute(catalog_entities.insert().values(entity_ref=key, **values))
                keep.append(key)
            conn.execute(
                catalog_entities.delete().where(
                    catalog_entities.c.location_key == location_key,
                    catalog_entities.c.entity_ref.not_in(keep),
                )
            )

    def get_entity(self, ref: str) -> dict[str, Any] | None:
        """The entity with this (lower-cased) ref, or None."""
        with self._engine.connect() as conn:
            text = conn.execute(
                sa.select(catalog_entities.c.entity).where(
                    catalog_entities.c.entity_ref == ref.lower()
                )
            ).scalar_one_or_none()
        return json.loads(text) if text else None

    def list_entities(self, filters: Sequence[Filter] = ()) -> list[dict[str, Any]]:
        """Entities matching any of ``filters`` (all entities when there are none)."""
        select = sa.select(catalog_entities.c.entity).order_by(catalog_entities.c.entity_ref)
        kinds = _only_kinds(filters)
        if kinds is not None:
            select = select.where(catalog_entities.c.kind.in_(kinds))
        with self._engine.connect() as conn:
            entities = [json.loads(text) for (text,) in conn.execute(select)]
        if not filters:
            return entities
        return [e for e in entities if any(_matches(e, f) for f in filters)]


def _stitch(entity: dict[str, Any], uid: str) -> dict[str, Any]:
    """The stored form: Backstage's key order, uid, etag and relations."""
    from scaffolder.catalog.relations import relations_of

    metadata = dict(entity.get("metadata") or {})
    metadata.setdefault("namespace", "default")
    ordered: dict[str, Any] = {
        "namespace": metadata.pop("namespace"),
        "annotations": metadata.pop("annotations", {}),
    }
    ordered.update(metadata)
    ordered.pop("uid", None)
    ordered.pop("etag", None)
    body: dict[str, Any] = {"metadata": ordered}
    for key, value in entity.items():
        if key not in ("metadata", "relations", "status"):
            body[key] = value
    digest = hashlib.sha1(  # noqa: S324 - an etag, not a security boundary
        json.dumps(body, sort_keys=True).encode()
    ).hexdigest()
    ordered["uid"] = uid
    ordered["etag"] = digest
    body["relations"] = relations_of(body)
    return body


def _only_kinds(filters: Sequence[Filter]) -> list[str] | None:
    kinds: list[str] = []
    for f in filters:
        values = next((v for k, v in f.items() if k.lower() == "kind"), None)
        if values is None or any(v is None for v in values):
            return None
        kinds.extend(str(v).lower() for v in values)
    return kinds or None


def flatten(entity: Mapping[str, Any]) -> dict[str, set[str]]:
    """Backstage's search index: lower-cased dot paths to lower-cased string values."""
    out: dict[str, set[str]] = {}

    def add(key: str, value: Any) -> None:
        out.setdefault(key.lower(), set())
        if value is not None:
            out[key.lower()].add(str(value).lower())

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    add(f"{prefix}.{item}", True)
                walk(prefix, item)
        else:
            add(prefix, value)

    walk("", {k: v for k, v in entity.items() if k != "relations"})
    out.setdefault("metadata.namespace", {"default"})
    for relation in entity.get("relations") or []:
        add(f"relations.{relation['type']}", relation["targetRef"])
    return out


def _matches(entity: Mapping[str, Any], condition: Filter) -> bool:
    index = flatten(entity)
    for key, values in condition.items():
        present = index.get(key.lower())
        if present is None:
            return False
        wanted = [v for v in values if v is not None]
        if wanted and not any(v.lower() in present for v in wanted):
            return False
    return True

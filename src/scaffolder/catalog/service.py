"""The embedded catalog as one service: sources, refreshes, locations and reads.

A *source* is what one refresh re-reads as a whole: a configured location
(``catalog.locations[]``), a location registered over the API (``catalog_locations``), or a
set of entities put in by code (`CatalogService.replace_location`). A location's source key is
the ref of its Location entity. Each location source is refreshed every
``catalog.refreshIntervalSeconds`` (default 100) by a background thread, at once on
``POST /refresh``, and soon after it is registered.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from scaffolder.catalog.errors import EntityError
from scaffolder.catalog.git_reader import GitFileReader
from scaffolder.catalog.locations import Location
from scaffolder.catalog.model import (
    ANNOTATION_LOCATION,
    ANNOTATION_ORIGIN_LOCATION,
    LocationSpec,
    RefError,
    location_entity,
    location_entity_name,
    location_entity_ref,
    parse_location_ref,
    parse_ref,
    ref_of,
    stringify_ref,
)
from scaffolder.catalog.processing import (
    ALLOWED_LOCATION_TYPES,
    Item,
    Processor,
    Tree,
    allowed_types_error,
)
from scaffolder.catalog.readers import (
    DEFAULT_TIMEOUT_SECONDS,
    AllowRule,
    GithubIntegration,
    UrlReader,
    allow_rules_from_config,
    integrations_from_config,
)
from scaffolder.catalog.rules import CatalogRules
from scaffolder.catalog.store import Filter, SqlCatalogStore
from scaffolder.catalog.sync import SyncReport
from scaffolder.catalog.validation import check_envelope, enforce_policies, validate_kind
from scaffolder.errors import ConflictError, InputError, NotAllowedError, NotFoundError
from scaffolder.integrations.scm import ScmIntegrations
from scaffolder.tasks.model import utcnow

log = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL_SECONDS = 100.0
PROVIDER_PREFIX = "provider:"


@dataclass(frozen=True, kw_only=True)
class CatalogConfig:
    """The catalog's configuration (``catalog.*``, ``backend.reading``, ``integrations``)."""

    locations: tuple[LocationSpec, ...] = ()
    rules: CatalogRules = field(default_factory=CatalogRules.default)
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL_SECONDS
    keep_orphans: bool = False
    readonly: bool = False
    allow: tuple[AllowRule, ...] = ()
    github: tuple[GithubIntegration, ...] = ()
    read_timeout: float = DEFAULT_TIMEOUT_SECONDS
    #: Directories of the local git hosts: ``file://`` url targets are read from their
    #: bare repositories (`scaffolder.catalog.git_reader`).
    git_roots: tuple[Path, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CatalogConfig:
        """Read the configuration tree.

        Raises:
            InputError: when a catalog key has the wrong shape.
        """
        catalog = config.get("catalog") or {}
        if not isinstance(catalog, Mapping):
            raise InputError("Config key 'catalog' must be a mapping")
        locations = []
        for index, item in enumerate(catalog.get("locations") or []):
            if not isinstance(item, Mapping) or "target" not in item:
                raise InputError(f"catalog.locations[{index}] must have a type and a target")
            kind = str(item.get("type", "file"))
            target = str(item["target"])
            if kind == "file":
                target = os.path.abspath(target)
            locations.append(LocationSpec(type=kind, target=target))
        strategy = str(catalog.get("orphanStrategy", "delete"))
        if strategy not in ("delete", "keep"):
            raise InputError("catalog.orphanStrategy must be 'delete' or 'keep'")
        try:
            interval = float(
                catalog.get("refreshIntervalSeconds", DEFAULT_REFRESH_INTERVAL_SECONDS)
            )
            timeout = float(catalog.get("readTimeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        except (TypeError, ValueError):
            raise InputError(
                "catalog.refreshIntervalSeconds and catalog.readTimeoutSeconds must be numbers"
            ) from None
        return cls(
            locations=tuple(locations),
            rules=CatalogRules.from_config(catalog),
            refresh_interval=max(interval, 0.05),
            keep_orphans=strategy == "keep",
            readonly=bool(catalog.get("readonly", False)),
            allow=tuple(allow_rules_from_config(config)),
            github=tuple(integrations_from_config(config)),
            read_timeout=timeout,
            git_roots=ScmIntegrations.from_config(config).local_roots(),
        )


@dataclass(frozen=True, kw_only=True)
class DryRun:
    """The answer to a dry-run registration."""

    exists: bool
    location: dict[str, Any]
    entities: list[dict[str, Any]]


class CatalogService:
    """The embedded catalog: what the API, the scaffolder and the CLI use."""

    def __init__(
        self,
        store: SqlCatalogStore,
        config: CatalogConfig | None = None,
        *,
        reader: UrlReader | None = None,
    ) -> None:
        self.store = store
        self.config = config or CatalogConfig()
        git = GitFileReader(roots=self.config.git_roots, timeout=self.config.read_timeout)
        self.reader = reader or UrlReader(
            allow=self.config.allow,
            github=self.config.github or integrations_from_config({}),
            timeout=self.config.read_timeout,
            file_url_reader=git.read if self.config.git_roots else None,
        )
        self.processor = Processor(reader=self.reader, rules=self.config.rules)
        self._refresh_lock = threading.RLock()
        self._refresher: Refresher | None = None

    # --- reads the scaffolder and CLI use ------------------------------------------------

    def get_entity(self, ref: str) -> dict[str, Any] | None:
        """The stitched entity with this ref, or None."""
        return self.store.get_entity(ref)

    def list_entities(self, filters: Sequence[Filter] = ()) -> list[dict[str, Any]]:
        """Stitched entities matching any of ``filters``, by ref."""
        return self.store.list_entities(filters)

    # --- sources -------------------------------------------------------------------------

    def _config_roots(self) -> dict[str, dict[str, Any]]:
        return {
            location_entity_ref(spec.type, spec.target): location_entity(spec)
            for spec in self.config.locations
        }

    def _root(self, source_key: str) -> dict[str, Any] | None:
        configured = self._config_roots().get(source_key)
        if configured is not None:
            return configured
        for location in self.store.locations():
            if location.entity_ref == source_key:
                return _registered_root(location)
        return None

    def start(self, *, background: bool) -> None:
        """Read every location now; with ``background``, keep refreshing them in a thread."""
        roots = self._config_roots()
        for location in self.store.locations():
            roots.setdefault(location.entity_ref, _registered_root(location))
        for source_key in self.store.source_keys():
            if source_key not in roots and not source_key.startswith(PROVIDER_PREFIX):
                log.info("catalog: %s is no longer configured; removing its entities", source_key)
                self.store.syncer.remove_source(source_key, keep_orphans=self.config.keep_orphans)
        for source_key in roots:
            try:
                self.refresh_source(source_key)
            except Exception:  # e.g. another process ingesting the same location at once
                log.exception("catalog: reading %s failed; retrying on schedule", source_key)
                self.store.schedule(
                    source_key, utcnow() + timedelta(seconds=self.config.refresh_interval)
                )
        if background:
            self._refresher = Refresher(self)
            self._refresher.start()

    def close(self) -> None:
        """Stop the background refresher."""
        if self._refresher is not None:
            self._refresher.stop()
            self._refresher = None

    def refresh_source(self, source_key: str) -> SyncReport | None:
        """Read a location source again and sync it; None when the source is gone."""
        with self._refresh_lock:
            root = self._root(source_key)
            now = utcnow()
            if root is None:
                self.store.syncer.remove_source(source_key, keep_orphans=self.config.keep_orphans)
                return None
            tree = self.processor.walk(root, root["metadata"]["annotations"][ANNOTATION_LOCATION])
            report = self.store.syncer.sync(source_key, tree, keep_orphans=self.config.keep_orphans)
            root_item = tree.items.get(source_key)
            error = "; ".join(str(e) for e in root_item.errors) if root_item else None
            self.store.schedule(
                source_key,
                now + timedelta(seconds=self.config.refresh_interval),
                error=error or None,
                refreshed=now,
            )
        if report.added or report.removed or report.updated or report.conflicts:
            log.info(
                "catalog: %s +%d ~%d -%d, %d conflicts",
                source_key,
                report.added,
                report.updated,
                report.removed,
                len(report.conflicts),
            )
        return report

    def refresh_due(self) -> int:
        """Refresh every source whose time has come; returns how many."""
        due = self.store.due_sources(utcnow())
        for source_key in due:
            try:
                self.refresh_source(source_key)
            except Exception:  # a bad source must not stop the others
                log.exception("catalog: refreshing %s failed", source_key)
                self.store.schedule(
                    source_key, utcnow() + timedelta(seconds=self.config.refresh_interval)
                )
        return len(due)

    def replace_location(self, location_key: str, entities: Iterable[dict[str, Any]]) -> SyncReport:
        """Make ``entities`` exactly what the code-provided source ``location_key`` holds.

        They are processed (annotated with ``location_key`` unless they say otherwise,
        validated, related) and stitched like entities read from a file.
        """
        spec = parse_location_ref(location_key)
        tree = Tree()
        for entity in entities:
            metadata = dict(entity.get("metadata") or {})
            annotations = {
                ANNOTATION_LOCATION: spec.key,
                ANNOTATION_ORIGIN_LOCATION: spec.key,
                **(metadata.get("annotations") or {}),
            }
            unprocessed = {**entity, "metadata": {**metadata, "annotations": annotations}}
            result = self.processor.process(unprocessed)
            try:
                ref = ref_of(unprocessed)
            except (KeyError, TypeError):
                log.warning("catalog: %s: an entity without a name was skipped", location_key)
                continue
            tree.items[ref] = Item(
                ref=ref,
                location_key=spec.key,
                parent_ref=None,
                entity=result.entity,
                errors=result.errors,
                relations=result.relations,
            )
        with self._refresh_lock:
            return self.store.syncer.sync(
                PROVIDER_PREFIX + location_key, tree, keep_orphans=self.config.keep_orphans
            )

    def wake(self) -> None:
        """Have the refresher look for due sources now."""
        if self._refresher is not None:
            self._refresher.wake()

    # --- entities (API) ------------------------------------------------------------------

    def refresh_entity(self, entity_ref: str) -> None:
        """``POST /refresh``: read the entity's location again, now.

        Raises:
            NotFoundError: ``Entity <ref> not found``.
        """
        source = self.store.source_of(entity_ref)
        if source is None:
            raise NotFoundError(f"Entity {entity_ref.lower()} not found")
        if not source.startswith(PROVIDER_PREFIX):
            self.refresh_source(source)

    def delete_entity(self, uid: str) -> None:
        """Remove an entity; the location that still emits it brings it back on refresh."""
        with self._refresh_lock:
            row = self.store.syncer.remove_uid(uid)
        if row is not None and not row.source_key.startswith(PROVIDER_PREFIX):
            self.store.schedule(row.source_key, utcnow())
            self.wake()

    def ancestry(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """``{rootEntityRef, items: [{entity, parentEntityRefs}]}``.

        Raises:
            NotFoundError: ``No such entity <ref>``.
        """
        ref = stringify_ref(kind, namespace, name)
        chain = self.store.ancestry(ref)
        if chain is None:
            raise NotFoundError(f"No such entity {ref}")
        items = [
            {"entity": json.loads(text), "parentEntityRefs": [parent] if parent else []}
            for _, text, parent in chain
        ]
        return {"rootEntityRef": chain[0][0], "items": items}

    # --- locations (API) -----------------------------------------------------------------

    def _check_type(self, kind: str, types: tuple[str, ...] = ALLOWED_LOCATION_TYPES) -> None:
        if kind not in types:
            raise InputError(allowed_types_error(types).message)

    def _writable(self) -> None:
        if self.config.readonly:
            raise NotAllowedError("This operation not allowed in readonly mode")

    def dry_run(self, kind: str, target: str, presence: str | None) -> DryRun:
        """Read and process a location without storing anything (``?dryRun=true``).

        Raises:
            InputError: the processing errors, joined (upstream's 400).
        """
        self._check_type(kind)
        root = {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Location",
            "metadata": {
                "name": location_entity_name(kind, target),
                "namespace": "default",
                "annotations": {
                    ANNOTATION_LOCATION: f"{kind}:{target}",
                    ANNOTATION_ORIGIN_LOCATION: f"{kind}:{target}",
                },
            },
            "spec": {"type": kind, "target": target},
        }
        try:
            entities = self.processor.dry_run(root)
        except EntityError as exc:
            raise InputError(exc.message) from None
        location: dict[str, Any] = {"type": kind, "target": target}
        if presence is not None:
            location["presence"] = presence
        location["id"] = f"{kind}:{target}"
        location["entityRef"] = location_entity_ref(kind, target)
        exists = self.store.location_by_target(kind, target) is not None
        return DryRun(exists=exists, location=location, entities=entities)

    def create_location(
        self,
        kind: str,
        target: str,
        *,
        on_conflict: str = "reject",
        wait: bool = False,
        types: tuple[str, ...] = ALLOWED_LOCATION_TYPES,
    ) -> Location:
        """Register a location; its entities arrive when the refresher reads it (soon).

        Args:
            kind: the location type; one of ``types`` (the API allows ``url`` only, as
                upstream; the CLI also registers ``file`` locations).
            target: what the location reads.
            on_conflict: ``refresh`` reads an existing registration again instead of failing.
            wait: read the location before returning, even with a refresher running (the
                scaffolder's ``catalog:register`` and the CLI: the entities are there when the
                call returns).
            types: the location types allowed.

        Raises:
            InputError: for a type not in ``types``.
            NotAllowedError: in readonly mode.
            ConflictError: when it is registered already (unless ``on_conflict=refresh``).
        """
        self._check_type(kind, types)
        self._writable()
        existing = self.store.location_by_target(kind, target)
        if existing is not None:
            if on_conflict != "refresh":
                raise ConflictError(f"Location {kind}:{target} already exists")
            self._read_soon(existing.entity_ref, wait=wait)
            return existing
        location = Location(
            id=str(uuid.uuid4()),
            type=kind,
            target=target,
            entity_ref=location_entity_ref(kind, target),
        )
        self.store.insert_location(location, utcnow())
        self._read_soon(location.entity_ref, wait=wait or self._refresher is None)
        return location

    def _read_soon(self, source_key: str, *, wait: bool) -> None:
        """Read a location now (``wait``) or have the refresher read it at once."""
        if not wait:
            self.store.schedule(source_key, utcnow())
            self.wake()
            return
        try:
            self.refresh_source(source_key)
        except Exception:
            self.store.schedule(source_key, utcnow())
            raise

    def location(self, location_id: str) -> Location:
        """A registered location.

        Raises:
            NotFoundError: ``Found no location with ID <id>``.
        """
        found = self.store.location(location_id)
        if found is None:
            raise NotFoundError(f"Found no location with ID {location_id}")
        return found

    def update_location(self, location_id: str, kind: str, target: str) -> Location:
        """Point a registered location elsewhere (its entity ref stays).

        Raises:
            InputError, NotAllowedError, ConflictError, NotFoundError: as upstream.
        """
        self._check_type(kind)
        self._writable()
        other = self.store.location_by_target(kind, target)
        if other is not None and other.id != location_id:
            raise ConflictError(f"Location {kind}:{target} already exists")
        current = self.location(location_id)
        updated = Location(id=current.id, type=kind, target=target, entity_ref=current.entity_ref)
        self.store.update_location(updated)
        self.store.schedule(updated.entity_ref, utcnow())
        self.wake()
        return updated

    def delete_location(self, location_id: str) -> None:
        """Unregister a location and remove what it brought in.

        Raises:
            NotAllowedError: in readonly mode.
            NotFoundError: ``Found no location with ID <id>``.
        """
        self._writable()
        location = self.location(location_id)
        self.store.delete_location(location_id)
        if location.entity_ref not in self._config_roots():
            with self._refresh_lock:
                self.store.syncer.remove_source(
                    location.entity_ref, keep_orphans=self.config.keep_orphans
                )

    def location_by_entity(self, kind: str, namespace: str, name: str) -> Location:
        """The registered location an entity came from (by its origin annotation).

        Raises:
            NotFoundError: upstream's messages.
        """
        ref = stringify_ref(kind, namespace, name)
        origin = self.store.origin_location(ref)
        if origin is False:
            raise NotFoundError(f"found no entity for ref {ref}")
        if not origin:
            raise NotFoundError(f"found no origin annotation for ref {ref}")
        try:
            spec = parse_location_ref(origin)
        except RefError as exc:
            raise InputError(str(exc)) from None
        found = self.store.location_by_target(spec.type, spec.target)
        if found is None:
            raise NotFoundError(f"Found no location with type {spec.type} and target {spec.target}")
        return found

    # --- validation (API) ----------------------------------------------------------------

    def validate_entity(self, entity: dict[str, Any], location: str) -> list[EntityError]:
        """``POST /validate-entity``: process the entity as if read from ``location``."""
        metadata = dict(entity.get("metadata") or {})
        annotations = {
            **(metadata.get("annotations") or {}),
            ANNOTATION_LOCATION: location,
            ANNOTATION_ORIGIN_LOCATION: location,
        }
        unprocessed = {**entity, "metadata": {**metadata, "annotations": annotations}}
        if unprocessed.get("kind") == "Location":
            # Checking a Location does not read its targets here (upstream's does).
            try:
                validate_kind(enforce_policies(check_envelope(unprocessed)))
            except EntityError as exc:
                return [exc]
            return []
        return self.processor.process(unprocessed).errors


def _registered_root(location: Location) -> dict[str, Any]:
    entity = location_entity(LocationSpec(type=location.type, target=location.target))
    entity["metadata"]["name"] = parse_ref(location.entity_ref)[2]
    return entity


class Refresher:
    """The background thread that refreshes due sources (stopped by `stop`)."""

    def __init__(self, catalog: CatalogService) -> None:
        self.catalog = catalog
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-refresher", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """Look for due sources now."""
        self._wake.set()

    def stop(self) -> None:
        """Stop and wait for the thread (a refresh in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        interval = self.catalog.config.refresh_interval
        while not self._stop.is_set():
            try:
                self.catalog.refresh_due()
                upcoming = self.catalog.store.next_refresh_at()
            except Exception:
                log.exception("catalog: refresh cycle failed")
                upcoming = None
            delay = interval
            if upcoming is not None:
                delay = min(interval, max((upcoming - utcnow()).total_seconds(), 0.0))
            self._wake.wait(timeout=max(delay, 0.05))
            self._wake.clear()

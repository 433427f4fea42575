"""What the scaffolder asks of a catalog, and the embedded catalog answering it.

The catalog actions (``catalog:register``, ``catalog:fetch``) and the GitHub reviewer lookup
talk to a `CatalogClient`: the embedded catalog (`EmbeddedCatalogClient`, the default), or
with ``catalog.backend: backstage`` a real Backstage catalog over HTTP
(`scaffolder.integrations.backstage_catalog`). Both answer the calls Backstage's scaffolder
makes (CONTRACT §8.10): an entity by ref, entities by refs, and ``POST /locations`` with its
dry run.

Registering is idempotent on both: a location that exists already is read again instead of
failing (upstream's 409 would make a retried task fail at its ``catalog:register`` step).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scaffolder.catalog.service import CatalogService

#: The location type ``catalog:register`` registers (upstream's only API-registrable type).
URL_LOCATION = "url"


@dataclass(frozen=True, kw_only=True)
class RegisteredLocation:
    """A registered location.

    Attributes:
        type: the location type (``url``).
        target: what it reads.
        entity_ref: its Location entity, ``location:default/generated-<sha1>``.
        id: its id; None when a remote catalog only said it existed already.
        existed: whether it was registered before (and has been refreshed instead).
    """

    type: str
    target: str
    entity_ref: str
    id: str | None = None
    existed: bool = False


class CatalogClient(Protocol):
    """The catalog calls of the scaffolder (CONTRACT §8.10)."""

    def get_entity_by_ref(self, ref: str) -> dict[str, Any] | None:
        """The entity with this full ref (``kind:namespace/name``), or None.

        Raises:
            ScaffolderError: the catalog could not answer (a remote one: unreachable,
                refused credentials).
        """

    def get_entities_by_refs(self, refs: Sequence[str]) -> list[dict[str, Any] | None]:
        """The entity of each full ref, in order (None where there is none)."""

    def add_location(self, target: str, *, type: str = URL_LOCATION) -> RegisteredLocation:
        """Register a location, or refresh it when it is registered already.

        Raises:
            InputError: the type is not allowed, or the target is refused.
            NotAllowedError: the catalog is read-only, or the credentials may not register.
        """

    def dry_run_location(self, target: str, *, type: str = URL_LOCATION) -> list[dict[str, Any]]:
        """What registering ``target`` yields (``POST /locations?dryRun=true``): the Location
        entity first, then the entities read, processed but not stored.

        Raises:
            InputError: the target cannot be read or holds invalid entities (upstream's
                messages, joined).
        """


class EmbeddedCatalogClient:
    """The embedded catalog as a `CatalogClient`.

    Unlike a remote catalog, a registered location is read before `add_location` returns, so
    the entities a task registered are in the catalog when the task completes.
    """

    def __init__(self, catalog: CatalogService) -> None:
        self.catalog = catalog

    def get_entity_by_ref(self, ref: str) -> dict[str, Any] | None:
        """The stitched entity with this ref, or None."""
        return self.catalog.get_entity(ref)

    def get_entities_by_refs(self, refs: Sequence[str]) -> list[dict[str, Any] | None]:
        """The stitched entity of each ref, in order."""
        texts = self.catalog.store.entities_by_refs(list(refs))
        return [json.loads(text) if text else None for text in texts]

    def add_location(self, target: str, *, type: str = URL_LOCATION) -> RegisteredLocation:
        """Register (or refresh) a location and read it now."""
        existed = self.catalog.store.location_by_target(type, target) is not None
        location = self.catalog.create_location(type, target, on_conflict="refresh", wait=True)
        return RegisteredLocation(
            type=location.type,
            target=location.target,
            entity_ref=location.entity_ref,
            id=location.id,
            existed=existed,
        )

    def dry_run_location(self, target: str, *, type: str = URL_LOCATION) -> list[dict[str, Any]]:
        """The entities a dry-run registration yields."""
        return self.catalog.dry_run(type, target, None).entities

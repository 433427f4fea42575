"""Processing: one entity through upstream's pipeline, and a location's whole tree.

For one entity (``DefaultCatalogProcessingOrchestrator``): envelope check, pre-processing
(location annotations, sorted ref arrays), the entity policies, kind validation, reading the
targets of a Location entity, and relation emission. Errors keep upstream's messages.

For a tree (`walk`): starting from a root Location entity, every entity its targets yield is
processed in turn, Location entities reading further files. Unlike upstream, one bad document
or entity never holds back the rest of its file: each is judged on its own, and what could not
be judged (a read that failed, a document that is not an entity) makes the sync keep what the
catalog already had from that file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from scaffolder.catalog.errors import EntityError, input_error, plain_error
from scaffolder.catalog.model import (
    ANNOTATION_EDIT_URL,
    ANNOTATION_LOCATION,
    ANNOTATION_ORIGIN_LOCATION,
    ANNOTATION_SOURCE_LOCATION,
    ANNOTATION_VIEW_URL,
    LocationSpec,
    RefError,
    parse_location_ref,
    ref_of,
)
from scaffolder.catalog.parsing import ParseResult, parse_entity_yaml
from scaffolder.catalog.placeholders import PlaceholderRefused, inside, resolve_placeholders
from scaffolder.catalog.readers import ReadError, UrlReader, resolve_url
from scaffolder.catalog.relations import Relation, emit_relations, sort_spec_arrays
from scaffolder.catalog.rules import CatalogRules
from scaffolder.catalog.validation import check_envelope, enforce_policies, validate_kind

#: Location types the API (and a url location's files) may name (upstream's default).
ALLOWED_LOCATION_TYPES = ("url",)
MAX_DEPTH = 32
#: Entries the parse and result caches hold before they are emptied.
MAX_MEMO = 200_000
_COMMIT_HASH = re.compile(r"\b[0-9a-f]{40,}\b")


@dataclass(kw_only=True)
class Deferred:
    """An entity a Location's target yielded, annotated, and the file it came from."""

    entity: dict[str, Any]
    location_key: str
    #: False when the file has no ``$text``/``$json``/``$yaml`` at all (nothing to resolve).
    placeholders: bool = True
    #: Identifies the document (file, content hash, index, origin) when its processing may
    #: be reused on the next refresh; None when it may not.
    memo: tuple[str, str, int, str] | None = None


@dataclass(kw_only=True)
class Result:
    """What processing one entity produced."""

    entity: dict[str, Any] | None
    errors: list[EntityError] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    #: The read of a target failed: keep what this Location emitted before.
    read_failed: bool = False
    #: Files (location keys) with documents that could not be told apart as entities.
    incomplete: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """Whether the entity itself is valid (its targets may still have failed)."""
        return self.entity is not None


@dataclass(kw_only=True)
class Item:
    """One entity of a tree, processed."""

    ref: str
    location_key: str | None
    parent_ref: str | None
    entity: dict[str, Any] | None
    errors: list[EntityError]
    relations: list[Relation]


@dataclass(kw_only=True)
class Tree:
    """Everything one root location yields."""

    items: dict[str, Item] = field(default_factory=dict)
    #: Location refs whose reads failed: their previous children stay.
    retained_parents: set[str] = field(default_factory=set)
    #: Files with unattributable errors: nothing read from them before is removed.
    incomplete: set[str] = field(default_factory=set)


class Processor:
    """Processes entities with a reader, rules and the allowed location types."""

    def __init__(
        self,
        *,
        reader: UrlReader,
        rules: CatalogRules,
        allowed_location_types: tuple[str, ...] = ALLOWED_LOCATION_TYPES,
    ) -> None:
        self.reader = reader
        self.rules = rules
        self.allowed_location_types = allowed_location_types
        # Unchanged files are neither parsed nor processed again on the next refresh: the
        # parse of each file by content hash, and the result of each document in it (never
        # of a Location, which reads further files, nor of a file with placeholders).
        self._parsed: dict[str, tuple[str, list[ParseResult]]] = {}
        self._results: dict[tuple[str, str, int, str], Result] = {}

    # --- one entity ---------------------------------------------------------------------

    def process(
        self,
        unprocessed: Mapping[str, Any],
        *,
        placeholders: bool = True,
        memo: tuple[str, str, int, str] | None = None,
    ) -> Result:
        """Run one entity through the pipeline (it must carry its location annotations).

        ``placeholders=False`` skips the placeholder walk (its file has none); with ``memo``,
        the result of the same document last time is reused (a copy of its error list).
        """
        if memo is not None:
            cached = self._results.get(memo)
            if cached is not None:
                return Result(
                    entity=cached.entity, errors=list(cached.errors), relations=cached.relations
                )
        result = self._process(unprocessed, placeholders=placeholders)
        if memo is not None and not result.deferred and not result.read_failed:
            if len(self._results) > MAX_MEMO:
                self._results.clear()
            self._results[memo] = Result(
                entity=result.entity, errors=list(result.errors), relations=result.relations
            )
        return result

    def _process(self, unprocessed: Mapping[str, Any], *, placeholders: bool) -> Result:
        result = Result(entity=None)
        try:
            try:
                entity = plain_copy(check_envelope(dict(unprocessed)))
            except EntityError as exc:
                raise input_error(
                    "Entity envelope failed validation before processing", exc
                ) from None
            ref = ref_of(entity)
            location = self._annotation(entity, ANNOTATION_LOCATION, ref)
            origin = self._annotation(entity, ANNOTATION_ORIGIN_LOCATION, ref)
            entity = self._annotate(entity, location, origin)
            try:
                if placeholders:
                    entity = resolve_placeholders(
                        entity, location, lambda value: self._read_placeholder(value, location)
                    )
            except EntityError as exc:
                raise input_error(
                    "Processor PlaceholderProcessor threw an error while preprocessing", exc
                ) from None
            sort_spec_arrays(entity)
            try:
                entity = enforce_policies(entity)
            except EntityError as exc:
                raise input_error(f"Policy check failed for {ref}", exc) from None
            validate_kind(entity)
            if entity.get("kind") == "Location":
                self._read_location(entity, location, result)
            result.relations = emit_relations(entity)
            self._enforce_rules(ref, location, origin, result)
            result.entity = entity
        except EntityError as exc:
            result.errors.append(exc)
            result.entity = None
            result.deferred = []
        return result

    @staticmethod
    def _annotation(entity: Mapping[str, Any], key: str, ref: str) -> LocationSpec:
        value = (entity["metadata"].get("annotations") or {}).get(key)
        if not value:
            raise input_error(f"Entity '{ref}' does not have the annotation {key}")
        try:
            return parse_location_ref(value)
        except RefError as exc:
            raise EntityError(name="TypeError", message=str(exc)) from None

    def _annotate(
        self, entity: dict[str, Any], location: LocationSpec, origin: LocationSpec
    ) -> dict[str, Any]:
        """AnnotateLocationEntityProcessor: location annotations, the entity's own win."""
        computed = {ANNOTATION_LOCATION: location.key, ANNOTATION_ORIGIN_LOCATION: origin.key}
        if location.type == "url":
            integration = self.reader.integration_for(location.target)
            computed[ANNOTATION_VIEW_URL] = location.target
            if integration is not None:
                if not _COMMIT_HASH.search(location.target):
                    computed[ANNOTATION_EDIT_URL] = integration.edit_url(location.target)
                computed[ANNOTATION_SOURCE_LOCATION] = "url:" + integration.resolve(
                    "./", location.target
                )
        metadata = entity["metadata"]
        own = metadata.get("annotations")
        annotations = dict(computed)
        if isinstance(own, Mapping):
            annotations.update(own)
        merged_meta = {"annotations": annotations} | {
            k: v for k, v in metadata.items() if k != "annotations"
        }
        return {"metadata": merged_meta} | {k: v for k, v in entity.items() if k != "metadata"}

    def _read_placeholder(self, value: str, location: LocationSpec) -> bytes:
        """The bytes a placeholder names, relative to the entity's location."""
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", value):
            url = value
        elif location.type == "file":
            base = os.path.dirname(location.target)
            path = os.path.normpath(os.path.join(base, value))
            if not inside(base, path):
                raise PlaceholderRefused(
                    name="Error",
                    message=f"Placeholder may only reference files in the directory of "
                    f"{location.target}",
                )
            files = self.reader.read_files(path)
            if not files:
                raise EntityError(name="NotFoundError", message=f"file {path} does not exist")
            if files[0].error is not None:
                raise EntityError(name="Error", message=files[0].error.message)
            return files[0].data
        elif location.type == "url":
            url = self._absolute(location, "url", value)
        else:
            raise EntityError(name="Error", message=f"Cannot read {value} from {location.key}")
        if location.type == "url":
            base_host = urlsplit(location.target).netloc
            if self.reader.integration_for(url) is not None and urlsplit(url).netloc != base_host:
                raise PlaceholderRefused(
                    name="Error",
                    message="Placeholder may only reference files from the same repository as "
                    "the entity",
                )
        try:
            return self.reader.read_url(url)
        except ReadError as exc:
            raise EntityError(name=exc.name, message=exc.message) from None

    def _enforce_rules(
        self, ref: str, location: LocationSpec, origin: LocationSpec, result: Result
    ) -> None:
        allowed = []
        for deferred in result.deferred:
            if self.rules.is_allowed(deferred.entity, origin):
                allowed.append(deferred)
                continue
            child = ref_of(deferred.entity)
            result.errors.append(
                EntityError(
                    name="NotAllowedError",
                    message=f"Entity {child} at {location.key}, originated at {origin.key}, "
                    "is not of an allowed kind for that location",
                )
            )
        result.deferred = allowed

    # --- reading a Location's targets ---------------------------------------------------

    def _read_location(
        self, entity: dict[str, Any], location: LocationSpec, result: Result
    ) -> None:
        spec = entity.get("spec") or {}
        kind = spec.get("type") or location.type
        presence = spec.get("presence") or "required"
        if kind != location.type and kind not in self.allowed_location_types:
            result.errors.append(allowed_types_error(self.allowed_location_types))
            result.read_failed = True
            return
        targets = [spec["target"]] if spec.get("target") else []
        targets.extend(spec.get("targets") or [])
        for raw_target in targets:
            if kind == "file" and raw_target.endswith(os.sep):
                result.errors.append(
                    input_error(
                        f"LocationEntityProcessor cannot handle {kind} type location with "
                        f"target {location.target} that ends with a path separator"
                    )
                )
                continue
            target = self._absolute(location, kind, raw_target)
            self._read(LocationSpec(type=kind, target=target, presence=presence), entity, result)

    def _absolute(self, base: LocationSpec, kind: str, target: str) -> str:
        if base.type != kind:
            return target
        if kind == "file":
            if target.startswith("."):
                return os.path.normpath(os.path.join(os.path.dirname(base.target), target))
            return target
        if kind == "url":
            integration = self.reader.integration_for(base.target)
            try:
                if integration is not None:
                    return integration.resolve(target, base.target)
                return resolve_url(target, base.target)
            except ValueError:
                return target
        return target

    def _read(self, spec: LocationSpec, parent: dict[str, Any], result: Result) -> None:
        optional = spec.presence == "optional"
        if spec.type not in ("url", "file"):
            raise input_error(f"No processor was able to handle reading of {spec.key}")
        try:
            if spec.type == "url":
                files = self.reader.search(spec.target)
                missing = f"Unable to read url, no matching files found for {spec.target}"
            else:
                files = self.reader.read_files(spec.target)
                missing = f"file {spec.target} does not exist"
        except ReadError as exc:
            message = exc.message if spec.type == "file" else f"Unable to read url, {exc.message}"
            message = message[:5000]
            result.read_failed = True
            if exc.name == "NotFoundError":
                if not optional:
                    result.errors.append(EntityError(name="NotFoundError", message=message))
            else:
                result.errors.append(plain_error(message))
            return
        if not files:
            result.read_failed = True
            if not optional:
                result.errors.append(EntityError(name="NotFoundError", message=missing))
            return
        for file in files:
            here = LocationSpec(type=spec.type, target=file.target)
            if file.error is not None:
                result.errors.append(plain_error(file.error.message))
                result.incomplete.add(here.key)
                continue
            placeholders = any(marker in file.data for marker in (b"$text", b"$json", b"$yaml"))
            digest = hashlib.sha1(file.data).hexdigest()  # noqa: S324 - a cache key
            cached = self._parsed.get(here.key)
            if cached is not None and cached[0] == digest:
                documents = cached[1]
            else:
                documents = list(parse_entity_yaml(file.data, here))
                if len(self._parsed) > MAX_MEMO:
                    self._parsed.clear()
                self._parsed[here.key] = (digest, documents)
            for index, parsed in enumerate(documents):
                if parsed.error is not None:
                    result.errors.append(parsed.error)
                    result.incomplete.add(here.key)
                elif parsed.entity is not None:
                    memo = None if placeholders else (here.key, digest, index)
                    self._receive(parsed.entity, here, parent, result, placeholders, memo)

    def _receive(
        self,
        child: dict[str, Any],
        location: LocationSpec,
        parent: Mapping[str, Any],
        result: Result,
        placeholders: bool = True,
        memo: tuple[str, str, int] | None = None,
    ) -> None:
        """ProcessorOutputCollector: check the envelope and stamp the child's locations."""
        try:
            child = check_envelope(child)
        except EntityError as exc:
            result.errors.append(exc)
            result.incomplete.add(location.key)
            return
        if ref_of(child) == ref_of(parent):
            return
        annotations = child["metadata"].get("annotations") or {}
        if not isinstance(annotations, Mapping):
            result.errors.append(plain_error("metadata.annotations must be a valid object"))
            result.incomplete.add(location.key)
            return
        origin = parent["metadata"]["annotations"][ANNOTATION_ORIGIN_LOCATION]
        metadata = {
            **child["metadata"],
            "annotations": {
                **annotations,
                ANNOTATION_ORIGIN_LOCATION: origin,
                ANNOTATION_LOCATION: location.key,
            },
        }
        result.deferred.append(
            Deferred(
                entity={**child, "metadata": metadata},
                location_key=location.key,
                placeholders=placeholders,
                memo=None if memo is None else (*memo, str(origin)),
            )
        )

    # --- a whole tree -------------------------------------------------------------------

    def walk(self, root: Mapping[str, Any], root_location_key: str) -> Tree:
        """Process a root Location entity and everything it yields, breadth first."""
        tree = Tree()
        queue: deque[tuple[dict[str, Any], str, str | None, int, Deferred | None]] = deque(
            [(dict(root), root_location_key, None, 0, None)]
        )
        while queue:
            unprocessed, location_key, parent_ref, depth, deferred_from = queue.popleft()
            ref = ref_of(unprocessed)
            seen = tree.items.get(ref)
            if seen is not None:
                if seen.location_key != location_key and parent_ref in tree.items:
                    tree.items[parent_ref].errors.append(
                        conflict_error(ref, seen.location_key, location_key)
                    )
                continue
            result = self.process(
                unprocessed,
                placeholders=deferred_from is None or deferred_from.placeholders,
                memo=None if deferred_from is None else deferred_from.memo,
            )
            tree.items[ref] = Item(
                ref=ref,
                location_key=location_key,
                parent_ref=parent_ref,
                entity=result.entity,
                errors=result.errors,
                relations=result.relations,
            )
            if result.read_failed or not result.ok:
                tree.retained_parents.add(ref)
            tree.incomplete |= result.incomplete
            if depth >= MAX_DEPTH:
                continue
            for deferred in result.deferred:
                queue.append((deferred.entity, deferred.location_key, ref, depth + 1, deferred))
        return tree

    def dry_run(self, root: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``dryRunCreateLocation``'s processing: every entity, depth first, unstitched.

        Raises:
            EntityError: the errors of the first entity that failed, joined (upstream
                answers 400 with them), or ``Duplicate nested entity: <ref>``.
        """
        entities: list[dict[str, Any]] = []
        seen: set[str] = set()
        stack: list[dict[str, Any]] = [dict(root)]
        while stack:
            current = stack.pop()
            result = self.process(current)
            if result.entity is None or result.errors:
                raise input_error(", ".join(str(e) for e in result.errors))
            ref = ref_of(result.entity)
            if ref in seen:
                raise input_error(f"Duplicate nested entity: {ref}")
            seen.add(ref)
            stack.extend(d.entity for d in result.deferred)
            entities.append(result.entity)
        return entities


def plain_copy(value: Any) -> Any:
    """A copy of a JSON value (several times faster than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value


def allowed_types_error(types: tuple[str, ...]) -> EntityError:
    """Upstream's refusal of a location type (``["url"]`` written as JSON)."""
    listed = json.dumps(list(types), separators=(",", ":"))
    return input_error(f"Registered locations must be of an allowed type {listed}")


def conflict_error(ref: str, existing: str | None, new: str | None) -> EntityError:
    """Upstream's message when two locations emit the same entity."""
    return EntityError(
        name="ConflictError",
        message=f"Detected conflicting entityRef {ref} already referenced by {existing} "
        f"and now also {new}",
    )

"""Writing a processed tree to the database, and stitching whatever it changed.

One refresh of a source (a root location, or entities put in by code) ends in one write
transaction that:

1. takes every entity the tree yielded, except those another source already owns (the first
   owner keeps it; the conflict is reported on the Location entity that emitted the copy);
2. removes (or, with ``orphanStrategy: keep``, orphans) what the source no longer emits,
   keeping what a failed read or an unparseable document might still hold;
3. replaces the relations each entity originates, when they changed;
4. re-stitches every entity whose processed form, errors or relations changed, including the
   targets of relations (a Group gains ``ownerOf`` when a Component names it as owner), and
   rewrites their search rows. Unchanged entities are not written at all.

Statements are batched (``executemany``) so that ten thousand entities take one transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from scaffolder.catalog.errors import EntityError
from scaffolder.catalog.processing import Item, Tree, conflict_error
from scaffolder.catalog.search import build_search_rows
from scaffolder.catalog.stitching import stitch, to_json
from scaffolder.db.raw import RawDatabase
from scaffolder.tasks.model import utcnow

CHUNK = 500
#: SQLite page cache during a sync, in KiB (the default is 2 MiB; the search index of ten
#: thousand entities needs far more to be written without re-reading its own pages).
SYNC_CACHE_KIB = 65536


@dataclass(frozen=True, kw_only=True)
class Row:
    """The sync-relevant columns of a ``catalog_entities`` row."""

    id: int
    uid: str
    ref: str
    source_key: str
    location_key: str | None
    parent_ref: str | None
    processed: str | None
    errors: str | None
    orphan: bool
    hash: str | None


@dataclass(kw_only=True)
class SyncReport:
    """What a sync did (for logs and tests)."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    stitched: int = 0
    conflicts: list[str] = field(default_factory=list)


_ROW_COLUMNS = (
    "id, uid, entity_ref, source_key, location_key, parent_ref, processed, errors, orphan, hash"
)


def _row(values: Sequence[Any]) -> Row:
    return Row(
        id=int(values[0]),
        uid=str(values[1]),
        ref=str(values[2]),
        source_key=str(values[3]),
        location_key=values[4],
        parent_ref=values[5],
        processed=values[6],
        errors=values[7],
        orphan=bool(values[8]),
        hash=values[9],
    )


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``values`` in slices of ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def _processed(entity: dict[str, Any], uid: str) -> tuple[str, dict[str, Any]]:
    """The stored processed form: the entity with its uid (appended, as upstream does)."""
    metadata = dict(entity["metadata"])
    metadata["uid"] = uid
    with_uid = {**entity, "metadata": metadata}
    return to_json(with_uid), with_uid


def errors_json(errors: Iterable[EntityError]) -> str | None:
    """The stored form of a list of errors (None when empty)."""
    listed = [e.to_json() for e in errors]
    return to_json(listed) if listed else None


class Syncer:
    """Applies trees and removals inside one write transaction of a `RawDatabase`."""

    def __init__(self, db: RawDatabase) -> None:
        self.db = db

    @contextmanager
    def _big_cache(self, cur: Any) -> Iterator[None]:
        """A larger SQLite page cache while a sync writes (index inserts stay in memory)."""
        if not self.db.sqlite:
            yield
            return
        cur.execute(f"PRAGMA cache_size=-{SYNC_CACHE_KIB}")
        try:
            yield
        finally:
            cur.execute("PRAGMA cache_size=-2000")

    # --- reads inside the transaction ---------------------------------------------------

    def _rows_where(self, cur: Any, where: str, params: Sequence[Any]) -> dict[str, Row]:
        cur.execute(
            self.db.sql(f"SELECT {_ROW_COLUMNS} FROM catalog_entities WHERE {where}"), params
        )
        return {row.ref: row for row in map(_row, cur.fetchall())}

    def _rows_by_refs(self, cur: Any, refs: Sequence[str]) -> dict[str, Row]:
        found: dict[str, Row] = {}
        for part in chunks(list(refs)):
            found.update(self._rows_where(cur, f"entity_ref IN ({_marks(len(part))})", part))
        return found

    # --- sync a source ------------------------------------------------------------------

    def sync(self, source_key: str, tree: Tree, *, keep_orphans: bool) -> SyncReport:
        """Make the database hold what ``tree`` says ``source_key`` emits now.

        Most refreshes change nothing: that is found out in a read transaction first, so the
        write lock (which task events queue on) is only taken when there is something to write.
        """
        report = SyncReport()
        if self._unchanged(source_key, tree):
            return report
        with self.db.cursor(write=True) as cur, self._big_cache(cur):
            existing = self._rows_where(cur, "source_key = ?", [source_key])
            elsewhere = self._rows_by_refs(cur, [r for r in tree.items if r not in existing])
            accepted = self._accept(tree, existing, elsewhere, report)
            known = {**elsewhere, **existing}
            self._report_failures(tree, accepted, known)
            keep = self._retained(existing, accepted, tree)
            gone = [row for ref, row in existing.items() if ref not in accepted and ref not in keep]
            restitch: set[str] = set()
            restitch |= self._remove(cur, gone, keep_orphans=keep_orphans, report=report)
            processed = self._upsert(cur, source_key, accepted, known, report, restitch)
            ids = self._ids(cur, [ref for ref in accepted if accepted[ref].entity is not None])
            restitch |= self._sync_relations(cur, accepted, ids)
            report.stitched = self._stitch(cur, restitch, processed)
        return report

    def _unchanged(self, source_key: str, tree: Tree) -> bool:
        """Whether syncing ``tree`` would write nothing (a conservative, read-only check).

        Anything not already stored for this source (a new entity, a conflict, a new entity
        that fails) counts as a change; so does any difference in a stored row or in the
        relations an entity originates.
        """
        with self.db.cursor() as cur:
            existing = self._rows_where(cur, "source_key = ?", [source_key])
            if any(ref not in existing for ref in tree.items):
                return False
            keep = self._retained(existing, tree.items, tree)
            if any(ref not in tree.items and ref not in keep for ref in existing):
                return False
            for ref, item in tree.items.items():
                row = existing[ref]
                if row.orphan or (row.location_key, row.parent_ref) != (
                    item.location_key,
                    item.parent_ref,
                ):
                    return False
                if row.errors != errors_json(item.errors):
                    return False
                if item.entity is not None and row.processed != _processed(item.entity, row.uid)[0]:
                    return False
            ids = {
                row.id: ref for ref, row in existing.items() if tree.items[ref].entity is not None
            }
            stored: dict[int, set[tuple[str, str, str]]] = {i: set() for i in ids}
            for part in chunks(list(ids)):
                cur.execute(
                    self.db.sql(
                        "SELECT originating_id, source_ref, type, target_ref "
                        f"FROM catalog_relations WHERE originating_id IN ({_marks(len(part))})"
                    ),
                    part,
                )
                for origin, source, kind, target in cur.fetchall():
                    stored[int(origin)].add((str(source), str(kind), str(target)))
            return all(stored[i] == set(tree.items[ref].relations) for i, ref in ids.items())

    def _accept(
        self, tree: Tree, existing: dict[str, Row], elsewhere: dict[str, Row], report: SyncReport
    ) -> dict[str, Item]:
        accepted: dict[str, Item] = {}
        for ref, item in tree.items.items():
            other = elsewhere.get(ref)
            if other is not None and not other.orphan and ref not in existing:
                report.conflicts.append(ref)
                parent = tree.items.get(item.parent_ref or "")
                if parent is not None:
                    parent.errors.append(conflict_error(ref, other.location_key, item.location_key))
                continue
            accepted[ref] = item
        return accepted

    @staticmethod
    def _report_failures(tree: Tree, accepted: dict[str, Item], known: dict[str, Row]) -> None:
        """A new entity that failed is invisible: its errors go to its Location entity."""
        for ref, item in accepted.items():
            row = known.get(ref)
            if item.entity is None and (row is None or row.processed is None):
                parent = tree.items.get(item.parent_ref or "")
                if parent is not None and parent is not item:
                    parent.errors.extend(item.errors)

    @staticmethod
    def _retained(existing: dict[str, Row], accepted: dict[str, Item], tree: Tree) -> set[str]:
        closure = set(tree.retained_parents)
        keep: set[str] = set()
        changed = True
        while changed:
            changed = False
            for ref, row in existing.items():
                if ref in accepted or ref in keep:
                    continue
                if (row.parent_ref in closure) or (row.location_key in tree.incomplete):
                    keep.add(ref)
                    closure.add(ref)
                    changed = True
        return keep

    def _remove(
        self, cur: Any, gone: list[Row], *, keep_orphans: bool, report: SyncReport
    ) -> set[str]:
        """Delete (or orphan) rows; returns the refs to re-stitch (relation peers)."""
        if not gone:
            return set()
        peers = self._relation_peers(cur, [row.id for row in gone])
        if keep_orphans:
            fresh = [row for row in gone if not row.orphan]
            cur.executemany(
                self.db.sql(
                    "UPDATE catalog_entities SET orphan = ?, parent_ref = NULL WHERE id = ?"
                ),
                [(True, row.id) for row in fresh],
            )
            return peers | {row.ref for row in fresh}
        cur.executemany(
            self.db.sql("DELETE FROM catalog_entities WHERE id = ?"), [(row.id,) for row in gone]
        )
        report.removed += len(gone)
        return peers - {row.ref for row in gone}

    def _relation_peers(self, cur: Any, ids: Sequence[int]) -> set[str]:
        peers: set[str] = set()
        for part in chunks(list(ids)):
            cur.execute(
                self.db.sql(
                    "SELECT DISTINCT source_ref FROM catalog_relations "
                    f"WHERE originating_id IN ({_marks(len(part))})"
                ),
                part,
            )
            peers.update(str(r[0]) for r in cur.fetchall())
        return peers

    def _upsert(
        self,
        cur: Any,
        source_key: str,
        accepted: dict[str, Item],
        known: dict[str, Row],
        report: SyncReport,
        restitch: set[str],
    ) -> dict[str, dict[str, Any]]:
        """Insert and update entity rows; returns the processed entities by ref."""
        now = self.db.to_db(utcnow())
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        processed_by_ref: dict[str, dict[str, Any]] = {}
        for ref, item in accepted.items():
            row = known.get(ref)
            errors = errors_json(item.errors)
            if item.entity is None:
                if row is None or row.processed is None:
                    continue  # never valid: reported on its Location entity
                uid = row.uid
                processed_text = row.processed
            else:
                uid = row.uid if row is not None else str(uuid.uuid4())
                processed_text, entity = _processed(item.entity, uid)
                processed_by_ref[ref] = entity
            if row is None:
                inserts.append(
                    (
                        uid,
                        ref,
                        source_key,
                        item.location_key,
                        item.parent_ref,
                        processed_text,
                        errors,
                        now,
                        now,
                    )
                )
                restitch.add(ref)
                continue
            if (
                row.processed != processed_text
                or row.errors != errors
                or row.orphan
                or row.source_key != source_key
                or row.location_key != item.location_key
                or row.parent_ref != item.parent_ref
            ):
                updates.append(
                    (
                        source_key,
                        item.location_key,
                        item.parent_ref,
                        processed_text,
                        errors,
                        False,
                        now,
                        row.id,
                    )
                )
                restitch.add(ref)
        if inserts:
            cur.executemany(
                self.db.sql(
                    "INSERT INTO catalog_entities (uid, entity_ref, source_key, location_key, "
                    "parent_ref, processed, errors, generation, orphan, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 0, FALSE, ?, ?)"
                ),
                inserts,
            )
        if updates:
            cur.executemany(
                self.db.sql(
                    "UPDATE catalog_entities SET source_key = ?, location_key = ?, "
                    "parent_ref = ?, processed = ?, errors = ?, orphan = ?, updated_at = ? "
                    "WHERE id = ?"
                ),
                updates,
            )
        report.added += len(inserts)
        report.updated += len(updates)
        return processed_by_ref

    def _ids(self, cur: Any, refs: Sequence[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for part in chunks(list(refs)):
            cur.execute(
                self.db.sql(
                    "SELECT entity_ref, id FROM catalog_entities "
                    f"WHERE entity_ref IN ({_marks(len(part))})"
                ),
                part,
            )
            ids.update((str(r[0]), int(r[1])) for r in cur.fetchall())
        return ids

    def _sync_relations(self, cur: Any, accepted: dict[str, Item], ids: dict[str, int]) -> set[str]:
        """Replace changed relation sets; returns the source refs whose relations changed."""
        current: dict[int, set[tuple[str, str, str]]] = {}
        id_list = list(ids.values())
        for part in chunks(id_list):
            cur.execute(
                self.db.sql(
                    "SELECT originating_id, source_ref, type, target_ref "
                    f"FROM catalog_relations WHERE originating_id IN ({_marks(len(part))})"
                ),
                part,
            )
            for origin, source, kind, target in cur.fetchall():
                current.setdefault(int(origin), set()).add((str(source), str(kind), str(target)))
        touched: set[str] = set()
        replace: list[int] = []
        rows: list[tuple[int, str, str, str]] = []
        for ref, entity_id in ids.items():
            item = accepted[ref]
            wanted = set(item.relations)
            have = current.get(entity_id, set())
            if wanted == have:
                continue
            touched |= {r[0] for r in wanted ^ have}
            replace.append(entity_id)
            rows.extend((entity_id, s, t, r) for s, t, r in sorted(wanted))
        if replace:
            cur.executemany(
                self.db.sql("DELETE FROM catalog_relations WHERE originating_id = ?"),
                [(i,) for i in replace],
            )
            cur.executemany(
                self.db.sql(
                    "INSERT INTO catalog_relations (originating_id, source_ref, type, target_ref) "
                    "VALUES (?, ?, ?, ?)"
                ),
                rows,
            )
        return touched

    # --- stitching ----------------------------------------------------------------------

    def _stitch(self, cur: Any, refs: set[str], processed: dict[str, dict[str, Any]]) -> int:
        """Re-stitch ``refs`` that exist; returns how many changed."""
        if not refs:
            return 0
        rows = self._rows_by_refs(cur, sorted(refs))
        relations: dict[str, list[tuple[str, str]]] = {}
        for part in chunks(list(rows)):
            cur.execute(
                self.db.sql(
                    "SELECT DISTINCT source_ref, type, target_ref FROM catalog_relations "
                    f"WHERE source_ref IN ({_marks(len(part))})"
                ),
                part,
            )
            for source, kind, target in cur.fetchall():
                relations.setdefault(str(source), []).append((str(kind), str(target)))
        updates: list[tuple[Any, ...]] = []
        search: list[tuple[int, str, str | None, str | None]] = []
        stitched_ids: list[int] = []
        now = self.db.to_db(utcnow())
        for ref, row in rows.items():
            if row.processed is None:
                continue
            entity = processed.get(ref) or json.loads(row.processed)
            errors = [EntityError.from_json(e) for e in json.loads(row.errors or "[]")]
            try:
                result = stitch(
                    entity, relations=relations.get(ref, ()), errors=errors, orphan=row.orphan
                )
                search_rows = build_search_rows(result.entity)
            except EntityError:
                continue  # keys that differ only in case: keep the last good stitch
            if result.hash == row.hash:
                continue
            updates.append((result.json, result.hash, result.etag, now, row.id))
            stitched_ids.append(row.id)
            search.extend((row.id, k, v, o) for k, v, o in search_rows)
        if updates:
            cur.executemany(
                self.db.sql(
                    "UPDATE catalog_entities SET final_entity = ?, hash = ?, etag = ?, "
                    "generation = generation + 1, updated_at = ? WHERE id = ?"
                ),
                updates,
            )
            cur.executemany(
                self.db.sql("DELETE FROM catalog_search WHERE entity_id = ?"),
                [(i,) for i in stitched_ids],
            )
            cur.executemany(
                self.db.sql(
                    "INSERT INTO catalog_search (entity_id, key, value, original_value) "
                    "VALUES (?, ?, ?, ?)"
                ),
                search,
            )
        return len(updates)

    # --- removals from outside a refresh ------------------------------------------------

    def remove_source(self, source_key: str, *, keep_orphans: bool) -> int:
        """Remove (or orphan) every entity of a source; returns how many."""
        with self.db.cursor(write=True) as cur:
            rows = list(self._rows_where(cur, "source_key = ?", [source_key]).values())
            report = SyncReport()
            restitch = self._remove(cur, rows, keep_orphans=keep_orphans, report=report)
            self._stitch(cur, restitch, {})
            cur.execute(
                self.db.sql("DELETE FROM catalog_refresh_state WHERE source_key = ?"), [source_key]
            )
        return len(rows)

    def remove_uid(self, uid: str) -> Row | None:
        """Delete one entity by uid (its relation peers are re-stitched); returns its row."""
        with self.db.cursor(write=True) as cur:
            rows = list(self._rows_where(cur, "uid = ?", [uid]).values())
            if not rows:
                return None
            restitch = self._remove(cur, rows, keep_orphans=False, report=SyncReport())
            self._stitch(cur, restitch, {})
        return rows[0]

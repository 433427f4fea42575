"""The embedded catalog's storage: entity reads, locations and refresh state (SQL).

Reads are plain DB-API statements (`RawDatabase`): the served JSON of each entity is stored
pre-serialized and comes back as text that the API splices into its responses, and filters
are ``EXISTS`` lookups on the search index (`query.SqlFilter`). Writes of processed trees
live in `sync.Syncer`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from scaffolder.catalog.locations import LocationTables
from scaffolder.catalog.query import Predicate, SqlFilter
from scaffolder.catalog.sync import Syncer, chunks
from scaffolder.db.raw import RawDatabase
from scaffolder.errors import InputError

#: One legacy filter: each key maps to the values it may have (None = the key must exist).
Filter = Mapping[str, Sequence[str | None]]

#: The search key every stitched entity has exactly once (its uid): the visible entities.
UID_KEY = "metadata.uid"


class CatalogStore(Protocol):
    """What the scaffolder reads from a catalog (embedded or, later, remote)."""

    def get_entity(self, ref: str) -> dict[str, Any] | None:
        """The entity with this ref (case-insensitive), or None."""

    def list_entities(self, filters: Sequence[Filter] = ()) -> list[dict[str, Any]]:
        """Entities matching any of ``filters`` (all when there are none), by ref."""


@dataclass(frozen=True, kw_only=True)
class QueryPage:
    """One page of ``queryEntities``: served JSON texts, total, and raw cursors."""

    items: list[str]
    total_items: int
    next_cursor: dict[str, Any] | None
    prev_cursor: dict[str, Any] | None


def filters_to_predicate(filters: Sequence[Filter]) -> Predicate | None:
    """Legacy ``[{key: [values]}]`` filters as a predicate."""
    outer: list[Predicate] = []
    for condition in filters:
        parts: list[Predicate] = []
        for key, values in condition.items():
            wanted = [v for v in values if v is not None]
            if not wanted:
                parts.append({key: {"$exists": True}})
            else:
                parts.append({key: wanted[0]} if len(wanted) == 1 else {key: {"$in": wanted}})
        outer.append(parts[0] if len(parts) == 1 else {"$all": parts})
    if not outer:
        return None
    return outer[0] if len(outer) == 1 else {"$any": outer}


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


class SqlCatalogStore(LocationTables):
    """Entities, locations and refresh state in the service's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.db = RawDatabase(engine)
        self.syncer = Syncer(self.db)

    # --- single entities ----------------------------------------------------------------

    def entity_json(self, ref: str) -> str | None:
        """The served JSON of the entity with this ref, or None."""
        text = self._one(
            "SELECT final_entity FROM catalog_entities WHERE entity_ref = ?", [ref.lower()]
        )
        return str(text) if text is not None else None

    def get_entity(self, ref: str) -> dict[str, Any] | None:
        """The entity with this (case-insensitive) ref, or None."""
        text = self.entity_json(ref)
        return json.loads(text) if text else None

    def entity_json_by_uid(self, uid: str) -> str | None:
        """The served JSON of the entity with this uid, or None."""
        text = self._one("SELECT final_entity FROM catalog_entities WHERE uid = ?", [uid])
        return str(text) if text is not None else None

    def source_of(self, ref: str) -> str | None:
        """The source (refresh root) that emits the entity, or None when unknown."""
        value = self._one(
            "SELECT source_key FROM catalog_entities WHERE entity_ref = ?", [ref.lower()]
        )
        return str(value) if value is not None else None

    def origin_location(self, ref: str) -> str | bool | None:
        """The origin-location annotation's value; False when the entity is unknown."""
        with self.db.cursor() as cur:
            cur.execute(
                self.db.sql("SELECT id FROM catalog_entities WHERE entity_ref = ?"), [ref.lower()]
            )
            row = cur.fetchone()
            if row is None:
                return False
            cur.execute(
                self.db.sql(
                    "SELECT original_value FROM catalog_search WHERE entity_id = ? AND key = ?"
                ),
                [row[0], "metadata.annotations.backstage.io/managed-by-origin-location"],
            )
            found = cur.fetchone()
        return str(found[0]) if found and found[0] is not None else None

    def entities_by_refs(
        self, refs: Sequence[str], predicate: Predicate | None = None
    ) -> list[str | None]:
        """The served JSON of each ref (None for missing or filtered out), in order."""
        normalized = [r.lower() for r in refs]
        lookup: dict[str, str | None] = {}
        with self.db.cursor() as cur:
            for part in chunks(sorted(set(normalized)), 200):
                where = SqlFilter()
                condition = where.compile(predicate) if predicate else "1 = 1"
                cur.execute(
                    self.db.sql(
                        "SELECT e.entity_ref, e.final_entity FROM catalog_entities e "
                        f"WHERE e.entity_ref IN ({_marks(len(part))}) AND {condition}"
                    ),
                    [*part, *where.params],
                )
                for ref, text in cur.fetchall():
                    lookup[str(ref)] = str(text) if text is not None else None
        return [lookup.get(ref) for ref in normalized]

    def list_entities(self, filters: Sequence[Filter] = ()) -> list[dict[str, Any]]:
        """Entities matching any of ``filters`` (all entities when there are none), by ref."""
        where = SqlFilter()
        predicate = filters_to_predicate(filters)
        condition = where.compile(predicate) if predicate else "1 = 1"
        rows = self._all(
            "SELECT e.final_entity FROM catalog_entities e WHERE e.final_entity IS NOT NULL "
            f"AND {condition} ORDER BY e.entity_ref",
            where.params,
        )
        return [json.loads(text) for (text,) in rows]

    def ancestry(self, ref: str) -> list[tuple[str, str, str | None]] | None:
        """``(ref, served JSON, parent ref)`` from the entity up to its root, or None."""
        chain: list[tuple[str, str, str | None]] = []
        seen: set[str] = set()
        current: str | None = ref.lower()
        with self.db.cursor() as cur:
            while current and current not in seen:
                seen.add(current)
                cur.execute(
                    self.db.sql(
                        "SELECT final_entity, parent_ref FROM catalog_entities WHERE entity_ref = ?"
                    ),
                    [current],
                )
                row = cur.fetchone()
                if row is None or row[0] is None:
                    break
                chain.append((current, str(row[0]), row[1]))
                current = row[1]
        return chain or None

    # --- GET /entities with pagination (``entities()``) ------------------------------

    def list_page(
        self,
        *,
        predicate: Predicate | None,
        order: Sequence[tuple[str, str]],
        limit: int | None,
        offset: int | None,
    ) -> tuple[list[str], bool]:
        """Served JSON texts of one page, and whether another page follows."""
        where = SqlFilter()
        joins: list[str] = []
        join_params: list[Any] = []
        order_by: list[str] = []
        for index, (direction, field) in enumerate(order):
            alias = f"o{index}"
            joins.append(
                f"LEFT JOIN catalog_search {alias} ON {alias}.entity_id = e.id "
                f"AND {alias}.key = ? AND {alias}.value IS NOT NULL"
            )
            join_params.append(field)
            sql_dir = "DESC" if direction == "desc" else "ASC"
            order_by.extend([f"({alias}.value IS NULL)", f"{alias}.value {sql_dir}"])
        order_by.append("e.uid ASC" if order else "e.entity_ref ASC")
        condition = where.compile(predicate) if predicate else "1 = 1"
        sql = (
            "SELECT e.final_entity FROM catalog_entities e "
            + " ".join(joins)
            + f" WHERE e.final_entity IS NOT NULL AND {condition} ORDER BY "
            + ", ".join(order_by)
        )
        params = [*join_params, *where.params]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit + 1)
        if offset:
            if limit is None:
                sql += " LIMIT -1" if self.db.sqlite else " LIMIT ALL"
            sql += " OFFSET ?"
            params.append(offset)
        rows = [str(r[0]) for r in self._all(sql, params)]
        if limit is not None and len(rows) > limit:
            return rows[:limit], True
        return rows, False

    # --- queryEntities (GET/POST /entities/by-query, GET /entities) --------------------

    def query_entities(
        self,
        *,
        limit: int,
        offset: int | None = None,
        initial: Mapping[str, Any] | None = None,
        cursor: Mapping[str, Any] | None = None,
    ) -> QueryPage:
        """One page, ordered by a field then uid (or by uid), with upstream's cursors.

        ``initial`` holds ``query``, ``orderFields``, ``fullTextFilter`` and
        ``totalItemsMode`` of a first request; ``cursor`` is a decoded cursor instead.
        """
        state: dict[str, Any] = {"orderFields": [], "isPrevious": False}
        if cursor is not None:
            state.update(cursor)
            total_mode = "exclude"
        else:
            first = initial or {}
            state["orderFields"] = list(first.get("orderFields") or [])
            if first.get("query") is not None:
                state["query"] = first["query"]
            if first.get("fullTextFilter") is not None:
                state["fullTextFilter"] = first["fullTextFilter"]
            total_mode = str(first.get("totalItemsMode") or "include")
        should_count = state.get("totalItems") is None and total_mode != "exclude"
        backwards = bool(state.get("isPrevious"))
        sort = state["orderFields"][0] if state["orderFields"] else None
        sort_key = str(sort["field"]).lower() if sort else None
        descending = bool(sort and sort.get("order") == "desc")
        predicate = self._combined_filter(state)
        text = state.get("fullTextFilter") or {}
        term = str(text.get("term") or "").strip()
        text_fields = [str(f).lower() for f in (text.get("fields") or [sort_key or "metadata.uid"])]

        def apply(where: SqlFilter, in_scope: bool) -> str:
            parts = [where.compile(predicate)] if predicate is not None else []
            if term:
                pattern = f"%{term.lower()}%"
                if in_scope and sort_key and text_fields == [sort_key]:
                    parts.append("s.value LIKE ?")
                    where.params.append(pattern)
                else:
                    parts.append(
                        f"{where.entity_id} IN (SELECT t.entity_id FROM catalog_search t "
                        f"WHERE t.key IN ({_marks(len(text_fields))}) AND t.value LIKE ?)"
                    )
                    where.params.extend([*text_fields, pattern])
            return " AND ".join(parts) if parts else "1 = 1"

        order = "DESC" if descending != backwards else "ASC"
        if sort_key:
            where = SqlFilter("s.entity_id")
            params: list[Any] = [sort_key]
            condition = apply(where, True)
            sql = (
                "SELECT e.uid, e.final_entity, s.value FROM catalog_search s "
                "JOIN catalog_entities e ON e.id = s.entity_id "
                "WHERE s.key = ? AND s.value IS NOT NULL AND e.final_entity IS NOT NULL "
                f"AND {condition}"
            )
            params.extend(where.params)
            uid = "e.uid"
        else:
            # Every stitched entity has exactly one `metadata.uid` search row: walking those
            # in index order is walking the visible entities by uid.
            where = SqlFilter("u.entity_id")
            condition = apply(where, False)
            sql = (
                "SELECT u.value, e.final_entity FROM catalog_search u "
                "JOIN catalog_entities e ON e.id = u.entity_id "
                f"WHERE u.key = '{UID_KEY}' AND {condition}"
            )
            params = list(where.params)
            uid = "u.value"
        values = state.get("orderFieldValues")
        if values and len(values) == 2 and sort_key:
            op = "<" if backwards != descending else ">"
            sql += f" AND (s.value {op} ? OR (s.value = ? AND e.uid {op} ?))"
            params.extend([values[0], values[0], values[1]])
        elif values and len(values) == 1:
            sql += f" AND {uid} {'<' if backwards else '>'} ?"
            params.append(values[0])
        sql += (
            f" ORDER BY s.value {order}, e.uid {order}" if sort_key else f" ORDER BY {uid} {order}"
        )
        sql += " LIMIT ?"
        params.append(limit if backwards else limit + 1)
        if cursor is None and offset:
            sql += " OFFSET ?"
            params.append(offset)
        rows = [tuple(r) for r in self._all(sql, params)] if limit > 0 else []

        if state.get("totalItems") is not None:
            total = int(state["totalItems"])
        elif not should_count:
            total = 0
        else:
            total = self._count(sort_key, apply)
        if backwards:
            rows.reverse()
        has_more = limit > 0 and (backwards or len(rows) > limit)
        if len(rows) > limit:
            rows = rows[:limit]

        def sort_values(row: tuple[Any, ...] | None) -> list[Any]:
            if sort_key:
                return [row[2] if row else None, row[0] if row else None]
            return [row[0] if row else None]

        first_row = rows[0] if rows else None
        last_row = rows[-1] if rows else None
        initial_request = state.get("firstSortFieldValues") is None
        first_values = state.get("firstSortFieldValues") or sort_values(first_row)
        next_cursor = (
            {
                **state,
                "orderFieldValues": sort_values(last_row),
                "firstSortFieldValues": first_values,
                "isPrevious": False,
                "totalItems": total,
            }
            if has_more
            else None
        )
        prev_cursor = (
            {
                **state,
                "orderFieldValues": sort_values(first_row),
                "firstSortFieldValues": state.get("firstSortFieldValues"),
                "isPrevious": True,
                "totalItems": total,
            }
            if not initial_request
            and rows
            and sort_values(first_row) != state.get("firstSortFieldValues")
            else None
        )
        return QueryPage(
            items=[str(r[1]) for r in rows],
            total_items=total,
            next_cursor=next_cursor,
            prev_cursor=prev_cursor,
        )

    @staticmethod
    def _combined_filter(state: Mapping[str, Any]) -> Predicate | None:
        filters: list[Predicate] = []
        legacy = state.get("filter")
        if legacy is not None:
            filters.append(_entity_filter_to_predicate(legacy))
        if state.get("query") is not None:
            filters.append(dict(state["query"]))
        if len(filters) > 1:
            return {"$all": filters}
        return filters[0] if filters else None

    def _count(self, sort_key: str | None, apply: Any) -> int:
        where = SqlFilter("u.entity_id")
        params: list[Any] = []
        sql = f"SELECT count(*) FROM catalog_search u WHERE u.key = '{UID_KEY}'"
        if sort_key:
            sql += (
                " AND u.entity_id IN (SELECT c.entity_id FROM catalog_search c "
                "WHERE c.key = ? AND c.value IS NOT NULL)"
            )
            params.append(sort_key)
        condition = apply(where, False)
        sql += f" AND {condition}"
        params.extend(where.params)
        return int(self._one(sql, params) or 0)

    def iter_all(
        self, *, predicate: Predicate | None, order_fields: Sequence[Mapping[str, Any]]
    ) -> Iterator[list[str]]:
        """Every match in batches of 10 000 (``GET /entities`` without pagination)."""
        page = self.query_entities(
            limit=10_000,
            initial={
                "query": predicate,
                "orderFields": list(order_fields),
                "totalItemsMode": "exclude",
            },
        )
        while True:
            if page.items:
                yield page.items
            if page.next_cursor is None:
                return
            page = self.query_entities(limit=10_000, cursor=page.next_cursor)

    # --- facets ---------------------------------------------------------------------

    def facets(
        self, facets: Sequence[str], predicate: Predicate | None
    ) -> dict[str, list[dict[str, Any]]]:
        """Counts of each original value of each facet, by value."""
        keys = sorted({f.lower() for f in facets})
        params: list[Any] = list(keys)
        sql = (
            "SELECT s.key, s.original_value, count(*) FROM catalog_search s "
            f"WHERE s.key IN ({_marks(len(keys))}) AND s.original_value IS NOT NULL"
        )
        if predicate is not None:
            # Search rows exist only for stitched entities: the filter applies to them as is.
            where = SqlFilter("s.entity_id")
            sql += f" AND {where.compile(predicate)}"
            params.extend(where.params)
        sql += " GROUP BY s.key, s.original_value ORDER BY s.key, s.original_value"
        rows = self._all(sql, params)
        out: dict[str, list[dict[str, Any]]] = {}
        for facet in facets:
            lowered = facet.lower()
            out[facet] = [
                {"value": str(value), "count": int(count)}
                for key, value, count in rows
                if key == lowered
            ]
        return out

    def source_keys(self) -> list[str]:
        """Every source that has entities."""
        return [
            str(r[0]) for r in self._all("SELECT DISTINCT source_key FROM catalog_entities", [])
        ]

    def source_entities(self, source_key: str) -> list[dict[str, Any]]:
        """The stitched entities a source emits, by ref (its Location entities carry the
        errors of what could not be read or stored, in ``status.items``)."""
        rows = self._all(
            "SELECT final_entity FROM catalog_entities WHERE source_key = ? "
            "AND final_entity IS NOT NULL ORDER BY entity_ref",
            [source_key],
        )
        return [json.loads(r[0]) for r in rows]


def _entity_filter_to_predicate(value: Any) -> Predicate:
    """A legacy cursor ``filter`` (``{key, values}``/``not``/``anyOf``/``allOf``)."""
    if not isinstance(value, Mapping):
        raise InputError("Malformed cursor: filter is not an object")
    if "key" in value:
        values = value.get("values")
        key = str(value["key"])
        if not values:
            return {key: {"$exists": True}}
        return {key: values[0]} if len(values) == 1 else {key: {"$in": list(values)}}
    if "not" in value:
        return {"$not": _entity_filter_to_predicate(value["not"])}
    if "anyOf" in value:
        return {"$any": [_entity_filter_to_predicate(v) for v in value["anyOf"]]}
    return {"$all": [_entity_filter_to_predicate(v) for v in value.get("allOf") or []]}

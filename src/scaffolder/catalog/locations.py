"""Registered locations and the refresh schedule (``catalog_locations``, ``catalog_refresh_state``).

Part of `SqlCatalogStore` (a base class, so the store keeps one face), kept apart from the
entity reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scaffolder.db.raw import RawDatabase
from scaffolder.errors import InputError


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


@dataclass(frozen=True, kw_only=True)
class Location:
    """A registered location (``catalog_locations``)."""

    id: str
    type: str
    target: str
    entity_ref: str

    def to_json(self) -> dict[str, str]:
        """The API's Location object."""
        return {
            "id": self.id,
            "type": self.type,
            "target": self.target,
            "entityRef": self.entity_ref,
        }


class LocationTables:
    """Locations and refresh state, through a `RawDatabase`."""

    db: RawDatabase

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        with self.db.cursor(single=True) as cur:
            cur.execute(self.db.sql(sql), params)
            row = cur.fetchone()
        return None if row is None else row[0]

    def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.db.cursor(single=True) as cur:
            cur.execute(self.db.sql(sql), params)
            return list(cur.fetchall())

    # --- locations ------------------------------------------------------------------

    def locations(self) -> list[Location]:
        """Registered locations, oldest first."""
        rows = self._all(
            "SELECT id, type, target, entity_ref FROM catalog_locations ORDER BY created_at, id", []
        )
        return [Location(id=r[0], type=r[1], target=r[2], entity_ref=r[3]) for r in rows]

    def location(self, location_id: str) -> Location | None:
        """A registered location by id."""
        rows = self._all(
            "SELECT id, type, target, entity_ref FROM catalog_locations WHERE id = ?", [location_id]
        )
        return (
            Location(id=rows[0][0], type=rows[0][1], target=rows[0][2], entity_ref=rows[0][3])
            if rows
            else None
        )

    def location_by_target(self, kind: str, target: str) -> Location | None:
        """A registered location by type and target."""
        rows = self._all(
            "SELECT id, type, target, entity_ref FROM catalog_locations "
            "WHERE type = ? AND target = ?",
            [kind, target],
        )
        return (
            Location(id=rows[0][0], type=rows[0][1], target=rows[0][2], entity_ref=rows[0][3])
            if rows
            else None
        )

    def insert_location(self, location: Location, now: datetime) -> None:
        """Store a new location."""
        with self.db.cursor(write=True, single=True) as cur:
            cur.execute(
                self.db.sql(
                    "INSERT INTO catalog_locations (id, type, target, entity_ref, created_at) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                [
                    location.id,
                    location.type,
                    location.target,
                    location.entity_ref,
                    self.db.to_db(now),
                ],
            )

    def update_location(self, location: Location) -> None:
        """Change a location's type and target (its entity ref stays)."""
        with self.db.cursor(write=True, single=True) as cur:
            cur.execute(
                self.db.sql("UPDATE catalog_locations SET type = ?, target = ? WHERE id = ?"),
                [location.type, location.target, location.id],
            )

    def delete_location(self, location_id: str) -> None:
        """Forget a location."""
        with self.db.cursor(write=True, single=True) as cur:
            cur.execute(self.db.sql("DELETE FROM catalog_locations WHERE id = ?"), [location_id])

    def query_locations(
        self, predicate: Any, *, after_id: str | None, limit: int
    ) -> tuple[list[Location], int]:
        """Locations matching ``predicate`` after ``after_id`` (by id), and their total."""
        params: list[Any] = []
        condition = _location_condition(predicate, params) if predicate is not None else "1 = 1"
        total = int(
            self._one(f"SELECT count(*) FROM catalog_locations WHERE {condition}", params) or 0
        )
        sql = f"SELECT id, type, target, entity_ref FROM catalog_locations WHERE {condition}"
        page_params = list(params)
        if after_id is not None:
            sql += " AND id > ?"
            page_params.append(after_id)
        sql += " ORDER BY id LIMIT ?"
        page_params.append(limit)
        rows = self._all(sql, page_params)
        return [Location(id=r[0], type=r[1], target=r[2], entity_ref=r[3]) for r in rows], total

    # --- refresh state --------------------------------------------------------------

    def due_sources(self, now: datetime) -> list[str]:
        """Sources whose next refresh time has come, most overdue first."""
        rows = self._all(
            "SELECT source_key FROM catalog_refresh_state WHERE next_refresh_at <= ? "
            "ORDER BY next_refresh_at",
            [self.db.to_db(now)],
        )
        return [str(r[0]) for r in rows]

    def next_refresh_at(self) -> datetime | None:
        """The earliest scheduled refresh."""
        return self.db.from_db(
            self._one("SELECT min(next_refresh_at) FROM catalog_refresh_state", [])
        )

    def schedule(
        self,
        source_key: str,
        at: datetime,
        *,
        error: str | None = None,
        refreshed: datetime | None = None,
    ) -> None:
        """Set when ``source_key`` is refreshed next (and how the last refresh went)."""
        with self.db.cursor(write=True) as cur:
            cur.execute(
                self.db.sql("DELETE FROM catalog_refresh_state WHERE source_key = ?"), [source_key]
            )
            cur.execute(
                self.db.sql(
                    "INSERT INTO catalog_refresh_state (source_key, next_refresh_at, "
                    "last_refresh_at, last_error) VALUES (?, ?, ?, ?)"
                ),
                [source_key, self.db.to_db(at), self.db.to_db(refreshed), error],
            )

    def refresh_error(self, source_key: str) -> str | None:
        """The last refresh error of a source."""
        value = self._one(
            "SELECT last_error FROM catalog_refresh_state WHERE source_key = ?", [source_key]
        )
        return str(value) if value is not None else None


_LOCATION_COLUMNS = {"id": "id", "type": "type", "target": "target", "entityref": "entity_ref"}


def _location_condition(query: Any, params: list[Any]) -> str:
    """``applyLocationFilterToQuery``: case-insensitive matches on the location columns."""
    if not isinstance(query, Mapping):
        raise InputError("Invalid filter predicate, expected an object")
    if "$all" in query:
        parts = [_location_condition(q, params) for q in query["$all"]]
        return "(" + " AND ".join(parts) + ")" if parts else "1 = 0"
    if "$any" in query:
        parts = [_location_condition(q, params) for q in query["$any"]]
        return "(" + " OR ".join(parts) + ")" if parts else "1 = 0"
    if "$not" in query:
        return f"NOT ({_location_condition(query['$not'], params)})"
    keys = list(query)
    if any(k.startswith("$") for k in keys):
        raise InputError(f"Invalid filter predicate, unknown logic operator '{', '.join(keys)}'")
    parts = []
    for raw_key, value in query.items():
        column = _LOCATION_COLUMNS.get(raw_key.lower())
        if column is None:
            raise InputError(
                "Invalid filter predicate, expected key to be 'id', 'type', 'target', or "
                f"'entityRef', got '{raw_key}'"
            )
        parts.append(_location_value(column, value, params))
    return "(" + " AND ".join(parts) + ")" if parts else "1 = 1"


def _location_value(column: str, value: Any, params: list[Any]) -> str:
    if isinstance(value, str | int | float | bool):
        params.append(str(value))
        return f"UPPER({column}) = UPPER(?)"
    if isinstance(value, Mapping):
        if "$exists" in value:
            return f"{column} IS NOT NULL" if value["$exists"] else f"{column} IS NULL"
        if "$in" in value:
            items = list(value["$in"])
            if not items:
                return "1 = 0"
            if column == "id":
                params.extend(items)
                return f"id IN ({_marks(len(items))})"
            params.extend(str(v) for v in items)
            return f"UPPER({column}) IN ({', '.join('UPPER(?)' for _ in items)})"
        if "$hasPrefix" in value:
            escaped = (
                str(value["$hasPrefix"])
                .replace("\\", "\\\\")
                .replace("%", "\\%")
                .replace("_", "\\_")
            )
            params.append(escaped + "%")
            return f"UPPER({column}) LIKE UPPER(?) ESCAPE '\\'"
        if "$contains" in value:
            return "1 = 0"
    raise InputError(f"Invalid filter predicate, got unknown matcher object '{json.dumps(value)}'")

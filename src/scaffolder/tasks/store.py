"""The task store: every SQL statement about tasks and their events.

State transitions are conditional UPDATEs on the expected status, so two processes racing for
the same task can never both win: losing is "nothing to claim" or a `ConflictError`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scaffolder.db.engine import write_connection
from scaffolder.db.tables import task_events, tasks
from scaffolder.errors import ConflictError, NotFoundError
from scaffolder.tasks.model import (
    TERMINAL_STATUSES,
    ClaimedTask,
    EventType,
    Task,
    TaskEvent,
    TaskStatus,
    dumps,
    is_recoverable,
    utcnow,
)

#: Fields a task list may be ordered by (Backstage 4.2+).
ORDER_FIELDS = ("created_at", "status", "created_by")


@dataclass(frozen=True, kw_only=True)
class TaskFilter:
    """What ``GET /v2/tasks`` asks for."""

    created_by: Sequence[str] = ()
    status: Sequence[str] = ()
    limit: int | None = None
    offset: int | None = None
    order: Sequence[tuple[str, str]] = (("created_at", "desc"),)


class SqlTaskStore:
    """Tasks and events in SQL (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    # --- tasks -------------------------------------------------------------------------

    def create_task(
        self, *, spec: dict[str, Any], secrets: dict[str, str] | None, created_by: str | None
    ) -> str:
        """Insert an ``open`` task and return its id."""
        task_id = str(uuid.uuid4())
        with self._write() as conn:
            conn.execute(
                tasks.insert().values(
                    id=task_id,
                    spec=dumps(spec),
                    status=TaskStatus.OPEN.value,
                    created_at=utcnow(),
                    last_heartbeat_at=None,
                    secrets=dumps(secrets) if secrets is not None else None,
                    created_by=created_by,
                )
            )
        return task_id

    def get_task(self, task_id: str) -> Task:
        """The task, or `NotFoundError` with Backstage's message."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    tasks.c.id,
                    tasks.c.spec,
                    tasks.c.status,
                    tasks.c.created_at,
                    tasks.c.last_heartbeat_at,
                    tasks.c.created_by,
                ).where(tasks.c.id == task_id)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"No task with id '{task_id}' found")
        return _task(row)

    def list_tasks(self, query: TaskFilter) -> tuple[list[Task], int]:
        """Matching tasks (ordered, paginated) and the count of all matches."""
        where: list[sa.ColumnElement[bool]] = []
        if query.created_by:
            where.append(tasks.c.created_by.in_(list(query.created_by)))
        if query.status:
            where.append(tasks.c.status.in_(list(query.status)))
        columns = (
            tasks.c.id,
            tasks.c.spec,
            tasks.c.status,
            tasks.c.created_at,
            tasks.c.last_heartbeat_at,
            tasks.c.created_by,
        )
        select = sa.select(*columns).where(*where)
        for field, direction in query.order:
            column = tasks.c[field]
            select = select.order_by(column.desc() if direction == "desc" else column.asc())
        select = select.order_by(tasks.c.id)
        if query.limit is not None:
            select = select.limit(query.limit)
        if query.offset is not None:
            select = select.offset(query.offset)
        count = sa.select(sa.func.count()).select_from(tasks).where(*where)
        with self._engine.connect() as conn:
            rows = conn.execute(select).all()
            total = conn.execute(count).scalar_one()
        return [_task(row) for row in rows], int(total)

    def claim_task(self, *, keep_secrets: bool = False) -> ClaimedTask | None:
        """Take the oldest ``open`` task: status ``processing``, heartbeat now.

        Secrets are handed to the caller and removed from the row (unless ``keep_secrets``,
        for task recovery), so they live only in the running worker's memory.
        """
        with self._write() as conn:
            select = (
                sa.select(
                    tasks.c.id, tasks.c.spec, tasks.c.secrets, tasks.c.created_by, tasks.c.state
                )
                .where(tasks.c.status == TaskStatus.OPEN.value)
                .order_by(tasks.c.created_at)
                .limit(1)
            )
            if self._postgres:
                select = select.with_for_update(skip_locked=True)
            row = conn.execute(select).one_or_none()
            if row is None:
                return None
            spec = json.loads(row.spec)
            keep = keep_secrets or is_recoverable(spec)
            values: dict[str, Any] = {
                "status": TaskStatus.PROCESSING.value,
                "last_heartbeat_at": utcnow(),
            }
            if not keep:
                values["secrets"] = None
            updated = conn.execute(
                tasks.update()
                .where(tasks.c.id == row.id, tasks.c.status == TaskStatus.OPEN.value)
                .values(**values)
            ).rowcount
            if updated != 1:
                return None
        state = json.loads(row.state)["state"] if row.state else {}
        return ClaimedTask(
            id=row.id,
            spec=spec,
            secrets=json.loads(row.secrets) if row.secrets else {},
            created_by=row.created_by,
            state=state,
        )

    def heartbeat(self, task_ids: Iterable[str]) -> None:
        """Refresh the heartbeat of running tasks."""
        ids = list(task_ids)
        if not ids:
            return
        with self._write() as conn:
            conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(ids), tasks.c.status == TaskStatus.PROCESSING.value)
                .values(last_heartbeat_at=utcnow())
            )

    def cancelled_among(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these tasks have a ``cancelled`` event (a cancel from any process)."""
        ids = list(task_ids)
        if not ids:
            return set()
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(task_events.c.task_id)
                .where(
                    task_events.c.task_id.in_(ids),
                    task_events.c.event_type == EventType.CANCELLED.value,
                )
                .distinct()
            ).all()
        return {row.task_id for row in rows}

    def complete_task(self, task_id: str, status: TaskStatus, body: dict[str, Any]) -> TaskEvent:
        """Finish a ``processing`` task: status, secrets dropped, completion event, at once."""
        with self._write() as conn:
            updated = conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.status == TaskStatus.PROCESSING.value)
                .values(status=status.value, secrets=None)
            ).rowcount
            if updated != 1:
                raise ConflictError(
                    f"Refusing to update status of run {task_id} to status {status.value} "
                    "as it is currently not processing or does not exist"
                )
            return self._insert_event(conn, task_id, EventType.COMPLETION, body)

    def cancel_task(self, task_id: str) -> tuple[TaskEvent, TaskEvent | None]:
        """Record a cancel: a ``cancelled`` event, secrets dropped.

        A task still ``open`` is finished here (status ``cancelled`` and its completion event),
        since no worker will ever run it. Returns the cancelled event and, for such a task, the
        completion event.
        """
        with self._write() as conn:
            status = conn.execute(
                sa.select(tasks.c.status).where(tasks.c.id == task_id)
            ).scalar_one_or_none()
            if status is None:
                raise NotFoundError(f"No task with id '{task_id}' found")
            step_id = self._last_step_id(conn, task_id)
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(secrets=None))
            cancelled = self._insert_event(
                conn,
                task_id,
                EventType.CANCELLED,
                {
                    "message": f"Step {step_id} has been cancelled.",
                    "stepId": step_id,
                    "status": "cancelled",
                },
            )
            completion = None
            if status == TaskStatus.OPEN.value:
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id == task_id, tasks.c.status == TaskStatus.OPEN.value)
                    .values(status=TaskStatus.CANCELLED.value)
                )
                completion = self._insert_event(
                    conn,
                    task_id,
                    EventType.COMPLETION,
                    {
                        "message": "Run completed with status: cancelled",
                        "error": {
                            "name": "Error",
                            "message": f"Task {task_id} was cancelled before it started",
                        },
                    },
                )
        return cancelled, completion

    def retry_task(self, task_id: str, *, secrets: dict[str, str] | None) -> TaskEvent:
        """Reopen a finished task; its cancel and completion events are removed."""
        with self._write() as conn:
            row = conn.execute(sa.select(tasks.c.spec).where(tasks.c.id == task_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"No task with id '{task_id}' found")
            updated = conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status.in_([s.value for s in TERMINAL_STATUSES]),
                )
                .values(
                    status=TaskStatus.OPEN.value,
                    secrets=dumps(secrets) if secrets is not None else None,
                    last_heartbeat_at=utcnow(),
                )
            ).rowcount
            if updated != 1:
                raise ConflictError(f"Task with taskId {task_id} cannot be retried")
            conn.execute(
                task_events.delete().where(
                    task_events.c.task_id == task_id,
                    task_events.c.event_type.in_(
                        [EventType.CANCELLED.value, EventType.COMPLETION.value]
                    ),
                )
            )
            spec = json.loads(row.spec)
            recovery = spec.get("EXPERIMENTAL_recovery") or {}
            strategy = recovery.get("EXPERIMENTAL_strategy") or "none"
            return self._insert_event(
                conn, task_id, EventType.RECOVERED, {"recoverStrategy": strategy}
            )

    # --- state (checkpoints and completed steps) ----------------------------------------

    def save_state(self, task_id: str, state: dict[str, Any]) -> None:
        """Persist the task's state (``{"checkpoints": ..., "steps": ...}``)."""
        with self._write() as conn:
            conn.execute(
                tasks.update().where(tasks.c.id == task_id).values(state=dumps({"state": state}))
            )

    # --- events --------------------------------------------------------------------------

    def emit(self, task_id: str, type_: EventType, body: dict[str, Any]) -> TaskEvent:
        """Append one event."""
        with self._write() as conn:
            return self._insert_event(conn, task_id, type_, body)

    def list_events(self, task_id: str, after: int | None = None) -> list[TaskEvent]:
        """Events with ``id > after``, plus the completion event always (Backstage's rule).

        For a ``startOver`` task, events before its last ``recovered`` event are hidden.
        """
        condition: sa.ColumnElement[bool] = task_events.c.task_id == task_id
        if after is not None:
            condition = sa.and_(
                condition,
                sa.or_(
                    task_events.c.id > after,
                    task_events.c.event_type == EventType.COMPLETION.value,
                ),
            )
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    task_events.c.id,
                    task_events.c.task_id,
                    task_events.c.event_type,
                    task_events.c.body,
                    task_events.c.created_at,
                )
                .where(condition)
                .order_by(task_events.c.id)
            ).all()
        events = [_event(row) for row in rows]
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if event.type is EventType.RECOVERED:
                if event.body.get("recoverStrategy") == "startOver":
                    return events[index + 1 :]
                break
        return events

    # --- helpers -------------------------------------------------------------------------

    def _write(self) -> AbstractContextManager[sa.Connection]:
        return write_connection(self._engine)

    def _insert_event(
        self, conn: sa.Connection, task_id: str, type_: EventType, body: dict[str, Any]
    ) -> TaskEvent:
        now = utcnow()
        event_id = conn.execute(
            task_events.insert()
            .values(task_id=task_id, body=dumps(body), event_type=type_.value, created_at=now)
            .returning(task_events.c.id)
        ).scalar_one()
        return TaskEvent(id=int(event_id), task_id=task_id, type=type_, body=body, created_at=now)

    def _last_step_id(self, conn: sa.Connection, task_id: str) -> str:
        rows = conn.execute(
            sa.select(task_events.c.body)
            .where(task_events.c.task_id == task_id)
            .order_by(task_events.c.id.desc())
        )
        for (body,) in rows:
            step_id = json.loads(body).get("stepId")
            if step_id is not None:
                return str(step_id)
        return "0"


def _task(row: Any) -> Task:
    return Task(
        id=row.id,
        spec=json.loads(row.spec),
        status=TaskStatus(row.status),
        created_at=_dt(row.created_at),
        last_heartbeat_at=_dt(row.last_heartbeat_at) if row.last_heartbeat_at else None,
        created_by=row.created_by,
    )


def _event(row: Any) -> TaskEvent:
    return TaskEvent(
        id=int(row.id),
        task_id=row.task_id,
        type=EventType(row.event_type),
        body=json.loads(row.body),
        created_at=_dt(row.created_at),
    )


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))

"""The task store: every SQL statement about tasks and their events.

State transitions are conditional UPDATEs on the expected status, so two processes racing for
the same task can never both win: losing is "nothing to claim" or a `ConflictError`. The
statements go to the driver directly (`RawDatabase`): they run ~30 times per task.

On PostgreSQL every write also sends its ``pg_notify`` in the same transaction (see
`scaffolder.db.postgres`), so other processes hear of it exactly when they can read it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scaffolder.db.postgres import TASK_CANCELS_CHANNEL, TASK_EVENTS_CHANNEL, TASKS_CHANNEL
from scaffolder.db.raw import HeldConnection, RawDatabase
from scaffolder.errors import ConflictError, NotFoundError
from scaffolder.tasks.model import (
    TERMINAL_STATUSES,
    ClaimedTask,
    EventType,
    RecoveredTask,
    Task,
    TaskEvent,
    TaskStatus,
    dumps,
    is_recoverable,
    utcnow,
)

#: What the stale-task janitor writes (upstream's words): a ``failed`` line for each step
#: left running, and the completion body.
STALE_TASK_MESSAGE = "This task was marked as stale as it exceeded its timeout"
#: A run of claim generation ``?`` (the second parameter; the first is the task id) still owns
#: its task: no ``recovered`` event since that claim (`ClaimedTask.generation`).
_NOT_RECOVERED_SINCE = (
    "NOT EXISTS (SELECT 1 FROM task_events WHERE task_id = ? "
    "AND event_type = 'recovered' AND id > ?)"
)
#: Fields a task list may be ordered by (Backstage 4.2+).
ORDER_FIELDS = ("created_at", "status", "created_by")

_TASK_COLUMNS = "id, spec, status, created_at, last_heartbeat_at, created_by"
_EVENT_COLUMNS = "id, task_id, event_type, body, created_at"


@dataclass(frozen=True, kw_only=True)
class TaskFilter:
    """What ``GET /v2/tasks`` asks for."""

    created_by: Sequence[str] = ()
    status: Sequence[str] = ()
    limit: int | None = None
    offset: int | None = None
    order: Sequence[tuple[str, str]] = (("created_at", "desc"),)


#: The largest notification payload we send; PostgreSQL refuses one of 8000 bytes or more.
NOTIFY_PAYLOAD_MAX_BYTES = 7900


class SqlTaskStore:
    """Tasks and events in SQL (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._db = RawDatabase(engine)
        # PostgreSQL: emit_many's own connection per lane, one batch at a time on each (its
        # caller, the EventWriter, writes one at a time per lane, so the lock is never
        # waited for).
        self._event_lanes: dict[int, tuple[threading.Lock, HeldConnection]] = {}
        self._event_lanes_lock = threading.Lock()
        sql = self._db.sql
        self._sql_notify = sql("SELECT pg_notify(?, ?)")
        # PostgreSQL only: a batch of events (one JSON array of rows, in order) and their
        # notifications. JSON, not arrays: psycopg dumps arrays element by element in Python
        # (a sixth of a busy worker's GIL time), json.dumps is C, and PostgreSQL parses it.
        # One notification per task carries that task's new events as stored,
        # {"t": task id, "e": [[id, type, body, createdAt], ...]}, so a woken reader needs no
        # query (`EventHub.notified`); a payload over PostgreSQL's 8000 bytes is the task id.
        self._sql_emit_batch = sql(
            "WITH ins AS (INSERT INTO task_events (task_id, body, event_type, created_at) "
            "SELECT e.v->>0, e.v->>1, e.v->>2, (e.v->>3)::timestamp "
            "FROM json_array_elements(?::json) WITH ORDINALITY AS e(v, n) ORDER BY e.n "
            "RETURNING id, task_id, event_type, body, created_at) "
            "SELECT pg_notify(?, CASE WHEN octet_length(d.p) <= "
            f"{NOTIFY_PAYLOAD_MAX_BYTES} THEN d.p ELSE d.t END) FROM ("
            "SELECT task_id AS t, json_build_object('t', task_id, 'e', json_agg("
            "json_build_array(id, event_type, body, created_at) ORDER BY id))::text AS p "
            "FROM ins GROUP BY task_id) AS d"
        )
        insert_task = (
            "INSERT INTO tasks (id, spec, status, created_at, secrets, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._sql_create_task = sql(
            f"WITH ins AS ({insert_task} RETURNING id) SELECT pg_notify(?, id) FROM ins"
            if self._db.postgres
            else insert_task
        )
        self._sql_get_task = sql(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?")
        self._sql_has_events = sql("SELECT 1 FROM task_events WHERE task_id = ? LIMIT 1")
        # PostgreSQL only: the claim, one statement (the oldest open task nobody else is
        # claiming, its generation and whether it has run before).
        self._sql_claim = sql(
            "WITH c AS (SELECT id, secrets FROM tasks WHERE status = 'open' "
            "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "UPDATE tasks AS t SET status = 'processing', last_heartbeat_at = ? FROM c "
            "WHERE t.id = c.id "
            "RETURNING t.id, t.spec, c.secrets, t.created_by, t.state, t.created_at, "
            "(SELECT COALESCE(MAX(e.id), 0) FROM task_events AS e "
            "WHERE e.task_id = t.id AND e.event_type = 'recovered'), "
            "EXISTS (SELECT 1 FROM task_events AS e WHERE e.task_id = t.id)"
        )
        self._sql_insert_event = sql(
            "INSERT INTO task_events (task_id, body, event_type, created_at) "
            "VALUES (?, ?, ?, ?) RETURNING id"
        )
        self._sql_insert_plain = sql(
            "INSERT INTO task_events (task_id, body, event_type, created_at) VALUES (?, ?, ?, ?)"
        )
        self._sql_events = sql(
            f"SELECT {_EVENT_COLUMNS} FROM task_events WHERE task_id = ? ORDER BY id"
        )
        self._sql_events_after = sql(
            f"SELECT {_EVENT_COLUMNS} FROM task_events "
            "WHERE task_id = ? AND (id > ? OR event_type = 'completion') ORDER BY id"
        )

    @property
    def engine(self) -> sa.Engine:
        """The engine the store writes to."""
        return self._db.engine

    @property
    def notifies(self) -> bool:
        """Whether writes send notifications to other processes (PostgreSQL)."""
        return self._db.postgres

    # --- tasks -------------------------------------------------------------------------

    def create_task(
        self, *, spec: dict[str, Any], secrets: dict[str, str] | None, created_by: str | None
    ) -> str:
        """Insert an ``open`` task and return its id."""
        task_id = str(uuid.uuid4())
        row = (
            task_id,
            dumps(spec),
            TaskStatus.OPEN.value,
            self._db.to_db(utcnow()),
            dumps(secrets) if secrets is not None else None,
            created_by,
        )
        # On PostgreSQL the insert carries its notification (one statement, in autocommit):
        # one round trip for a POST /v2/tasks, which a burst of them makes count.
        params = (*row, TASKS_CHANNEL) if self._db.postgres else row
        with self._db.cursor(write=True, single=True) as cur:
            cur.execute(self._sql_create_task, params)
        return task_id

    def get_task(self, task_id: str) -> Task:
        """The task, or `NotFoundError` with Backstage's message."""
        with self._db.cursor(single=True) as cur:
            cur.execute(self._sql_get_task, (task_id,))
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"No task with id '{task_id}' found")
        return self._task(row)

    def list_tasks(self, query: TaskFilter) -> tuple[list[Task], int]:
        """Matching tasks (ordered, paginated) and the count of all matches."""
        where: list[str] = []
        params: list[Any] = []
        for column, values in (("created_by", query.created_by), ("status", query.status)):
            if values:
                where.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = [
            self._order_term(field, direction)
            for field, direction in query.order
            if field in ORDER_FIELDS
        ]
        select = f"SELECT {_TASK_COLUMNS} FROM tasks{clause} ORDER BY {', '.join([*order, 'id'])}"
        page: list[Any] = []
        if query.limit is not None or query.offset is not None:
            select += " LIMIT ? OFFSET ?"
            page = [query.limit if query.limit is not None else -1, query.offset or 0]
            if self._db.postgres and query.limit is None:
                select = select.replace("LIMIT ? ", "LIMIT ALL ")
                page = page[1:]
        with self._db.cursor() as cur:
            cur.execute(self._db.sql(select), (*params, *page))
            rows = cur.fetchall()
            cur.execute(self._db.sql(f"SELECT COUNT(*) FROM tasks{clause}"), params)
            total = cur.fetchone()[0]
        return [self._task(row) for row in rows], int(total)

    def claim_task(self, *, keep_secrets: bool = False) -> ClaimedTask | None:
        """Take the oldest ``open`` task: status ``processing``, heartbeat now.

        Secrets are handed to the caller and removed from the row (unless ``keep_secrets``,
        for task recovery, or a startOver template), so they live only in the running
        worker's memory.
        """
        if self._db.postgres:
            return self._claim_task_postgres(keep_secrets=keep_secrets)
        with self._db.cursor(write=True) as cur:
            cur.execute(
                self._db.sql(
                    "SELECT id, spec, secrets, created_by, state, created_at FROM tasks "
                    "WHERE status = 'open' ORDER BY created_at LIMIT 1"
                )
            )
            row = cur.fetchone()
            if row is None:
                return None
            task_id, spec_text, secrets_text, created_by, state_text, created_at = row
            spec = json.loads(spec_text)
            keep = keep_secrets or is_recoverable(spec)
            cur.execute(
                self._db.sql(
                    "UPDATE tasks SET status = 'processing', last_heartbeat_at = ?"
                    + ("" if keep else ", secrets = NULL")
                    + " WHERE id = ? AND status = 'open'"
                ),
                (self._db.to_db(utcnow()), task_id),
            )
            if cur.rowcount != 1:
                return None
            generation = self._generation(cur, task_id)
            cur.execute(self._sql_has_events, (task_id,))
            first_run = cur.fetchone() is None
        return self._claimed(
            (task_id, spec, secrets_text, created_by, state_text, created_at),
            generation=generation,
            first_run=first_run,
        )

    def _claim_task_postgres(self, *, keep_secrets: bool) -> ClaimedTask | None:
        # One statement, in autocommit: one round trip for a claim instead of five. Secrets
        # stay in the row for now; a run that must not keep them drops them with a second
        # statement (rarely: only with task recovery off and no startOver).
        with self._db.cursor(write=True, single=True) as cur:
            cur.execute(self._sql_claim, (self._db.to_db(utcnow()),))
            row = cur.fetchone()
        if row is None:
            return None
        task_id, spec_text, secrets_text, created_by, state_text, created_at, gen, has = row
        spec = json.loads(spec_text)
        if secrets_text is not None and not (keep_secrets or is_recoverable(spec)):
            with self._db.cursor(write=True, single=True) as cur:
                cur.execute(
                    self._db.sql("UPDATE tasks SET secrets = NULL WHERE id = ?"), (task_id,)
                )
        return self._claimed(
            (task_id, spec, secrets_text, created_by, state_text, created_at),
            generation=int(gen),
            first_run=not has,
        )

    def _claimed(self, row: tuple[Any, ...], *, generation: int, first_run: bool) -> ClaimedTask:
        task_id, spec, secrets_text, created_by, state_text, created_at = row
        return ClaimedTask(
            id=task_id,
            spec=spec,
            secrets=json.loads(secrets_text) if secrets_text else {},
            created_by=created_by,
            state=json.loads(state_text)["state"] if state_text else {},
            generation=generation,
            created_at=self._db.from_db(created_at),
            first_run=first_run,
        )

    def heartbeat(self, task_ids: Iterable[str]) -> None:
        """Refresh the heartbeat of running tasks."""
        ids = list(task_ids)
        if not ids:
            return
        with self._db.cursor(write=True, single=True) as cur:
            cur.execute(
                self._db.sql(
                    "UPDATE tasks SET last_heartbeat_at = ? WHERE status = 'processing' "
                    f"AND id IN ({', '.join('?' for _ in ids)})"
                ),
                (self._db.to_db(utcnow()), *ids),
            )

    def run_signals(self, generations: Mapping[str, int]) -> tuple[set[str], set[str]]:
        """For running tasks (id to the `ClaimedTask.generation` of their run): which were
        cancelled, and which were lost (recovered or handed back since that run claimed them).
        """
        ids = list(generations)
        if not ids:
            return set(), set()
        with self._db.cursor() as cur:
            cur.execute(
                self._db.sql(
                    "SELECT task_id, event_type, MAX(id) FROM task_events "
                    "WHERE event_type IN ('cancelled', 'recovered') "
                    f"AND task_id IN ({', '.join('?' for _ in ids)}) GROUP BY task_id, event_type"
                ),
                ids,
            )
            rows = cur.fetchall()
        cancelled = {task_id for task_id, type_, _ in rows if type_ == EventType.CANCELLED.value}
        lost = {
            task_id
            for task_id, type_, last in rows
            if type_ == EventType.RECOVERED.value and int(last) > generations[task_id]
        }
        return cancelled, lost

    def complete_task(
        self,
        task_id: str,
        status: TaskStatus,
        body: dict[str, Any],
        *,
        generation: int | None = None,
        state: dict[str, Any] | None = None,
    ) -> TaskEvent:
        """Finish a ``processing`` task: status, secrets dropped, completion event, at once.

        ``completed`` also drops the workspace a failed run kept (`save_workspace`).
        ``state`` (checkpoints, completed steps), when given, is stored in the same statement.

        With ``generation`` (the run's `ClaimedTask.generation`), a run whose task was
        recovered meanwhile is refused too, even if another run has claimed it since.
        """
        guard = ""
        params: tuple[Any, ...] = ()
        if generation is not None:
            guard = f" AND {_NOT_RECOVERED_SINCE}"
            params = (task_id, generation)
        # A completed task needs its kept workspace no more; a failed or cancelled one keeps
        # it for a retry. In the same statement: no extra round trip on the success path.
        drop = ", workspace = NULL" if status is TaskStatus.COMPLETED else ""
        set_state = ", state = ?" if state is not None else ""
        state_params: tuple[Any, ...] = (dumps({"state": state}),) if state is not None else ()
        update = (
            f"UPDATE tasks SET status = ?, secrets = NULL{drop}{set_state} "
            f"WHERE id = ? AND status = 'processing'{guard}"
        )
        conflict = ConflictError(
            f"Refusing to update status of run {task_id} to status {status.value} "
            "as it is currently not processing or does not exist"
        )
        if self._db.postgres:
            # One statement in autocommit (status, event and notification): one round trip.
            now = utcnow()
            with self._db.cursor(write=True, single=True) as cur:
                cur.execute(
                    self._db.sql(
                        f"WITH upd AS ({update} RETURNING id), "
                        "ins AS (INSERT INTO task_events (task_id, body, event_type, created_at) "
                        "SELECT id, ?, ?, ? FROM upd RETURNING id, task_id) "
                        "SELECT ins.id, pg_notify(?, ins.task_id) FROM ins"
                    ),
                    (
                        status.value,
                        *state_params,
                        task_id,
                        *params,
                        dumps(body),
                        EventType.COMPLETION.value,
                        self._db.to_db(now),
                        TASK_EVENTS_CHANNEL,
                    ),
                )
                row = cur.fetchone()
            if row is None:
                raise conflict
            return TaskEvent(
                id=int(row[0]),
                task_id=task_id,
                type=EventType.COMPLETION,
                body=body,
                created_at=now,
            )
        with self._db.cursor(write=True) as cur:
            cur.execute(self._db.sql(update), (status.value, *state_params, task_id, *params))
            if cur.rowcount != 1:
                raise conflict
            event = self._insert_event(cur, task_id, EventType.COMPLETION, body)
            self._notify(cur, TASK_EVENTS_CHANNEL, task_id)
            return event

    def cancel_task(self, task_id: str) -> tuple[TaskEvent, TaskEvent | None]:
        """Record a cancel: a ``cancelled`` event, secrets dropped.

        A task still ``open`` is finished here (status ``cancelled`` and its completion event),
        since no worker will ever run it. Returns the cancelled event and, for such a task, the
        completion event.
        """
        sql = self._db.sql
        with self._db.cursor(write=True) as cur:
            cur.execute(sql("SELECT status FROM tasks WHERE id = ?"), (task_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFoundError(f"No task with id '{task_id}' found")
            step_id = self._last_step_id(cur, task_id)
            cur.execute(sql("UPDATE tasks SET secrets = NULL WHERE id = ?"), (task_id,))
            cancelled = self._insert_event(
                cur,
                task_id,
                EventType.CANCELLED,
                {
                    "message": f"Step {step_id} has been cancelled.",
                    "stepId": step_id,
                    "status": "cancelled",
                },
            )
            completion = None
            if row[0] == TaskStatus.OPEN.value:
                cur.execute(
                    sql("UPDATE tasks SET status = 'cancelled' WHERE id = ? AND status = 'open'"),
                    (task_id,),
                )
                completion = self._insert_event(
                    cur,
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
            self._notify(cur, TASK_EVENTS_CHANNEL, task_id)
            self._notify(cur, TASK_CANCELS_CHANNEL, task_id)
        return cancelled, completion

    def retry_task(self, task_id: str, *, secrets: dict[str, str] | None) -> TaskEvent:
        """Reopen a finished task; its cancel and completion events are removed."""
        sql = self._db.sql
        terminal = ", ".join(f"'{s.value}'" for s in TERMINAL_STATUSES)
        with self._db.cursor(write=True) as cur:
            cur.execute(sql("SELECT spec FROM tasks WHERE id = ?"), (task_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFoundError(f"No task with id '{task_id}' found")
            cur.execute(
                sql(
                    "UPDATE tasks SET status = 'open', secrets = ?, last_heartbeat_at = ? "
                    f"WHERE id = ? AND status IN ({terminal})"
                ),
                (
                    dumps(secrets) if secrets is not None else None,
                    self._db.to_db(utcnow()),
                    task_id,
                ),
            )
            if cur.rowcount != 1:
                raise ConflictError(f"Task with taskId {task_id} cannot be retried")
            cur.execute(
                sql(
                    "DELETE FROM task_events WHERE task_id = ? "
                    "AND event_type IN ('cancelled', 'completion')"
                ),
                (task_id,),
            )
            recovery = json.loads(row[0]).get("EXPERIMENTAL_recovery") or {}
            strategy = recovery.get("EXPERIMENTAL_strategy") or "none"
            event = self._insert_event(
                cur, task_id, EventType.RECOVERED, {"recoverStrategy": strategy}
            )
            self._notify(cur, TASK_EVENTS_CHANNEL, task_id)
            self._notify(cur, TASKS_CHANNEL, task_id)
            return event

    def recover_stale_tasks(self, heartbeat_before: datetime) -> list[RecoveredTask]:
        """Take back ``processing`` tasks whose heartbeat is older than ``heartbeat_before``.

        Their worker is gone (killed, or cut off from the database). Each gets a ``recovered``
        event; a ``startOver`` task is reopened for another worker (secrets kept, checkpoints
        in its state), any other task is failed (secrets dropped). Safe with many processes
        recovering at once: the rows are locked (SKIP LOCKED on PostgreSQL, SQLite's write
        lock) and each update repeats the stale condition, so one process takes each task.
        """
        lock = " FOR UPDATE SKIP LOCKED" if self._db.postgres else ""
        threshold = self._db.to_db(heartbeat_before)
        recovered: list[RecoveredTask] = []
        with self._db.cursor(write=True) as cur:
            cur.execute(
                self._db.sql(
                    "SELECT id, spec, last_heartbeat_at FROM tasks WHERE status = 'processing' "
                    f"AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ?){lock}"
                ),
                (threshold,),
            )
            for task_id, spec_text, heartbeat in cur.fetchall():
                last = self._db.from_db(heartbeat)
                seconds = (utcnow() - last).total_seconds() if last is not None else None
                reason = (
                    "The task failed because the task worker lost connection to the task broker"
                    + (f" (no heartbeat for {seconds:.0f} s)" if seconds is not None else "")
                )
                task = self._take_back(
                    cur,
                    task_id,
                    json.loads(spec_text),
                    reason=reason,
                    condition=("(last_heartbeat_at IS NULL OR last_heartbeat_at < ?)", threshold),
                    recovered_event=True,
                )
                if task is not None:
                    recovered.append(task)
        return recovered

    def close_stale_tasks(self, heartbeat_before: datetime) -> list[str]:
        """Fail ``processing`` tasks whose heartbeat is older than ``heartbeat_before``.

        Upstream's stale-task janitor (``scaffolder.taskTimeout``): each step of the current
        run that began and never finished gets a ``failed`` line, then the task completes
        ``failed`` with `STALE_TASK_MESSAGE` and its secrets are deleted. Whatever the
        template's recovery strategy: such a task is not run again. Safe with many processes
        at once, as `recover_stale_tasks` is: each task is closed by exactly one of them.
        Returns the ids of the tasks closed here.
        """
        threshold = self._db.to_db(heartbeat_before)
        stale = "status = 'processing' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ?)"
        # Nearly always nothing is stale: look before taking the write lock.
        with self._db.cursor(single=True) as cur:
            cur.execute(self._db.sql(f"SELECT 1 FROM tasks WHERE {stale} LIMIT 1"), (threshold,))
            if cur.fetchone() is None:
                return []
        lock = " FOR UPDATE SKIP LOCKED" if self._db.postgres else ""
        closed: list[str] = []
        with self._db.cursor(write=True) as cur:
            cur.execute(self._db.sql(f"SELECT id FROM tasks WHERE {stale}{lock}"), (threshold,))
            for (task_id,) in cur.fetchall():
                unfinished = self._unfinished_steps(cur, task_id)
                cur.execute(
                    self._db.sql(
                        "UPDATE tasks SET status = 'failed', secrets = NULL "
                        f"WHERE id = ? AND {stale}"
                    ),
                    (task_id, threshold),
                )
                if cur.rowcount != 1:
                    continue
                for step_id in unfinished:
                    self._insert_event(
                        cur,
                        task_id,
                        EventType.LOG,
                        {"message": STALE_TASK_MESSAGE, "stepId": step_id, "status": "failed"},
                    )
                self._insert_event(
                    cur, task_id, EventType.COMPLETION, {"message": STALE_TASK_MESSAGE}
                )
                self._notify(cur, TASK_EVENTS_CHANNEL, task_id)
                closed.append(task_id)
        return closed

    def release_task(self, task_id: str, *, generation: int, reason: str) -> RecoveredTask | None:
        """Hand back a task this process is running and will not finish (it shuts down).

        A ``startOver`` task is reopened at once (a ``recovered`` event), for another worker;
        any other task is failed with ``reason``. ``None`` if the run no longer owns the task
        (it finished, or was recovered meanwhile).
        """
        with self._db.cursor(write=True) as cur:
            cur.execute(
                self._db.sql("SELECT spec FROM tasks WHERE id = ? AND status = 'processing'"),
                (task_id,),
            )
            row = cur.fetchone()
            if row is None or self._generation(cur, task_id) != generation:
                return None
            return self._take_back(
                cur, task_id, json.loads(row[0]), reason=reason, recovered_event=False
            )

    def _take_back(
        self,
        cur: Any,
        task_id: str,
        spec: dict[str, Any],
        *,
        reason: str,
        recovered_event: bool,
        condition: tuple[str, Any] | None = None,
    ) -> RecoveredTask | None:
        sql = self._db.sql
        extra, params = (f" AND {condition[0]}", (condition[1],)) if condition else ("", ())
        reopen = is_recoverable(spec)
        strategy = "startOver" if reopen else "none"
        unfinished = [] if reopen else self._unfinished_steps(cur, task_id)
        if reopen:
            cur.execute(
                sql(
                    "UPDATE tasks SET status = 'open', last_heartbeat_at = ? "
                    f"WHERE id = ? AND status = 'processing'{extra}"
                ),
                (self._db.to_db(utcnow()), task_id, *params),
            )
        else:
            cur.execute(
                sql(
                    "UPDATE tasks SET status = 'failed', secrets = NULL "
                    f"WHERE id = ? AND status = 'processing'{extra}"
                ),
                (task_id, *params),
            )
        if cur.rowcount != 1:
            return None
        if reopen or recovered_event:
            self._insert_event(cur, task_id, EventType.RECOVERED, {"recoverStrategy": strategy})
        if not reopen:
            # Like upstream's stale janitor: the steps left running fail, then the task.
            for step_id in unfinished:
                self._insert_event(
                    cur,
                    task_id,
                    EventType.LOG,
                    {"message": reason, "stepId": step_id, "status": "failed"},
                )
            self._insert_event(
                cur,
                task_id,
                EventType.COMPLETION,
                {
                    "message": "Run completed with status: failed",
                    "error": {"name": "Error", "message": reason},
                },
            )
        self._notify(cur, TASK_EVENTS_CHANNEL, task_id)
        if reopen:
            self._notify(cur, TASKS_CHANNEL, task_id)
        return RecoveredTask(id=task_id, strategy=strategy, reopened=reopen)

    # --- state (checkpoints and completed steps) ----------------------------------------

    def save_state(self, task_id: str, state: dict[str, Any]) -> None:
        """Persist the task's state (``{"checkpoints": ..., "steps": ...}``)."""
        with self._db.cursor(write=True, single=True) as cur:
            cur.execute(
                self._db.sql("UPDATE tasks SET state = ? WHERE id = ?"),
                (dumps({"state": state}), task_id),
            )

    def save_workspace(
        self, task_id: str, state: dict[str, Any], archive: bytes | None, *, generation: int
    ) -> bool:
        """Keep ``archive`` (a workspace; ``None`` drops the one kept) with the state it goes with.

        Only while the run of ``generation`` still owns the task (``processing``, not recovered
        since): a run taken from us must not replace what the run that took it relies on.
        Returns whether it was written.
        """
        with self._db.cursor(write=True, single=True) as cur:
            cur.execute(
                self._db.sql(
                    "UPDATE tasks SET state = ?, workspace = ? "
                    f"WHERE id = ? AND status = 'processing' AND {_NOT_RECOVERED_SINCE}"
                ),
                (dumps({"state": state}), archive, task_id, task_id, generation),
            )
            return bool(cur.rowcount == 1)

    def load_workspace(self, task_id: str) -> bytes | None:
        """The workspace an earlier run of the task kept (`save_workspace`), if any."""
        with self._db.cursor(single=True) as cur:
            cur.execute(self._db.sql("SELECT workspace FROM tasks WHERE id = ?"), (task_id,))
            row = cur.fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else None

    # --- events --------------------------------------------------------------------------

    def emit(self, task_id: str, type_: EventType, body: dict[str, Any]) -> TaskEvent:
        """Append one event."""
        with self._db.cursor(write=True, single=not self._db.postgres) as cur:
            event = self._insert_event(cur, task_id, type_, body)
            self._notify(cur, TASK_EVENTS_CHANNEL, task_id)
            return event

    def emit_many(
        self,
        events: Sequence[tuple[str, EventType, dict[str, Any] | str, datetime | None]],
        *,
        lane: int = 0,
    ) -> None:
        """Append several events, in order, in one transaction.

        On PostgreSQL each ``lane`` has a connection of its own, so writes in different
        lanes can be in flight at once; writes in one lane go one at a time.

        Each event carries the time it was logged (``None``: now), so a batch written a few
        milliseconds later keeps each line's own ``createdAt``; its body may come serialised
        already (a JSON string), serialised by the thread that logged it.
        """
        if not events:
            return
        now = utcnow()
        to_db = self._db.to_db
        rows = [
            (task_id, body if isinstance(body, str) else dumps(body), type_.value, to_db(at or now))
            for task_id, type_, body, at in events
        ]
        if not self._db.postgres:
            with self._db.cursor(write=True) as cur:
                cur.executemany(self._sql_insert_plain, rows)
            return
        # One statement for the lot (the notification in the same statement), in autocommit:
        # one round trip, so one wait for the GIL afterwards in a process whose task threads
        # keep it busy.
        batch = json.dumps(
            [[task_id, body, kind, at.isoformat(sep=" ")] for task_id, body, kind, at in rows],
            ensure_ascii=False,
        )
        lock, connection = self._event_lane(lane)
        with lock:
            connection.execute(self._sql_emit_batch, (batch, TASK_EVENTS_CHANNEL))

    def _event_lane(self, lane: int) -> tuple[threading.Lock, HeldConnection]:
        entry = self._event_lanes.get(lane)
        if entry is None:
            with self._event_lanes_lock:
                entry = self._event_lanes.setdefault(lane, (threading.Lock(), self._db.held()))
        return entry

    def close(self) -> None:
        """Give back the connections kept for event writes (PostgreSQL)."""
        with self._event_lanes_lock:
            lanes, self._event_lanes = self._event_lanes, {}
        for lock, connection in lanes.values():
            with lock:
                connection.close()

    def list_events(self, task_id: str, after: int | None = None) -> list[TaskEvent]:
        """Events with ``id > after``, plus the completion event always (Backstage's rule).

        For a ``startOver`` task, events before its last ``recovered`` event are hidden.
        """
        with self._db.cursor(single=True) as cur:
            if after is None:
                cur.execute(self._sql_events, (task_id,))
            else:
                cur.execute(self._sql_events_after, (task_id, after))
            rows = cur.fetchall()
        events = [
            TaskEvent(
                id=int(row[0]),
                task_id=row[1],
                type=EventType(row[2]),
                body=json.loads(row[3]),
                created_at=self._db.from_db(row[4]) or utcnow(),
            )
            for row in rows
        ]
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if event.type is EventType.RECOVERED:
                if event.body.get("recoverStrategy") == "startOver":
                    return events[index + 1 :]
                break
        return events

    # --- helpers -------------------------------------------------------------------------

    def _notify(self, cur: Any, channel: str, payload: str) -> None:
        if self._db.postgres:
            cur.execute(self._sql_notify, (channel, payload))

    def _order_term(self, field: str, direction: str) -> str:
        descending = direction == "desc"
        term = f"{field} {'DESC' if descending else 'ASC'}"
        if self._db.postgres:
            # SQLite's order on both engines: bytewise text, NULL before any value.
            collate = "" if field == "created_at" else ' COLLATE "C"'
            term = f"{field}{collate} {'DESC NULLS LAST' if descending else 'ASC NULLS FIRST'}"
        return term

    def _insert_event(
        self, cur: Any, task_id: str, type_: EventType, body: dict[str, Any]
    ) -> TaskEvent:
        now = utcnow()
        cur.execute(
            self._sql_insert_event, (task_id, dumps(body), type_.value, self._db.to_db(now))
        )
        event_id = cur.fetchone()[0]
        return TaskEvent(id=int(event_id), task_id=task_id, type=type_, body=body, created_at=now)

    def _generation(self, cur: Any, task_id: str) -> int:
        cur.execute(
            self._db.sql(
                "SELECT COALESCE(MAX(id), 0) FROM task_events "
                "WHERE task_id = ? AND event_type = 'recovered'"
            ),
            (task_id,),
        )
        return int(cur.fetchone()[0])

    def _unfinished_steps(self, cur: Any, task_id: str) -> list[str]:
        """Steps of the current run that began and have not finished, in order."""
        cur.execute(
            self._db.sql(
                "SELECT event_type, body FROM task_events WHERE task_id = ? AND id > ? ORDER BY id"
            ),
            (task_id, self._generation(cur, task_id)),
        )
        status: dict[str, str] = {}
        for type_, body_text in cur.fetchall():
            if type_ != EventType.LOG.value:
                continue
            body = json.loads(body_text)
            if body.get("stepId") is not None and body.get("status"):
                status[str(body["stepId"])] = str(body["status"])
        return [step for step, value in status.items() if value == "processing"]

    def _last_step_id(self, cur: Any, task_id: str) -> str:
        cur.execute(
            self._db.sql("SELECT body FROM task_events WHERE task_id = ? ORDER BY id DESC"),
            (task_id,),
        )
        for (body,) in cur.fetchall():
            step_id = json.loads(body).get("stepId")
            if step_id is not None:
                return str(step_id)
        return "0"

    def _task(self, row: Sequence[Any]) -> Task:
        return Task(
            id=row[0],
            spec=json.loads(row[1]),
            status=TaskStatus(row[2]),
            created_at=self._db.from_db(row[3]) or utcnow(),
            last_heartbeat_at=self._db.from_db(row[4]),
            created_by=row[5],
        )

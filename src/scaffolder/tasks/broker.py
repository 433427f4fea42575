"""The broker: the store plus wake-ups, in process and across processes.

Upstream Backstage polls its database once a second for new events and cancels; here a write
wakes the readers of that task at once (`EventHub`). Writes from other processes (a
``scaffolder worker``, another ``scaffolder serve``) arrive through PostgreSQL's
``LISTEN/NOTIFY`` (`PgListener`), with a slow safety poll behind it; a notification of a
batch of log events carries the events, so the reader it wakes sends them without a query
(`EventReader`). SQLite has no such channel: there readers and idle workers re-query the
database every second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from scaffolder.db.postgres import (
    TASK_CANCELS_CHANNEL,
    TASK_EVENTS_CHANNEL,
    TASKS_CHANNEL,
    PgListener,
)
from scaffolder.tasks.model import (
    EventType,
    RecoveredTask,
    TaskEvent,
    TaskStatus,
    dumps,
    utcnow,
)
from scaffolder.tasks.store import SqlTaskStore

log = logging.getLogger(__name__)

#: Most events one write transaction takes.
MAX_EVENT_BATCH = 500
#: Event writes in flight at once per process on PostgreSQL (`EventWriter`).
EVENT_WRITE_LANES = 2
#: How often a waiting reader or idle worker re-queries the database when nothing woke it,
#: for writes by other processes that nothing announces (SQLite, or a lost LISTEN connection).
CROSS_PROCESS_POLL_SECONDS = 1.0
#: The same while ``LISTEN/NOTIFY`` announces every write: only a safety net.
NOTIFIED_POLL_SECONDS = 30.0


class EventReader:
    """One waiting reader's wake-up, with the events a notification carried, if it did.

    PostgreSQL notifications of event writes carry the events themselves when they fit
    (`SqlTaskStore.emit_many`), so a woken reader needs no query. Any wake-up without them
    (a write in this process, a notification too large to carry them, a reconnect of the
    LISTEN connection, the safety poll) makes the next `take` say "read the database".
    """

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._carried: list[TaskEvent] = []
        self._must_read = True  # the first look is always at the database

    def deliver(self, events: list[TaskEvent] | None) -> None:
        """Wake the reader; ``events`` are what the write stored, ``None`` when not known."""
        with self._lock:
            if events is None:
                self._must_read = True
                self._carried = []
            elif not self._must_read:
                self._carried.extend(events)
        self._ready.set()

    def take(self) -> list[TaskEvent] | None:
        """The events carried since the last take (in order), or ``None``: read the database."""
        with self._lock:
            self._ready.clear()
            if self._must_read:
                self._must_read = False
                self._carried = []
                return None
            carried, self._carried = self._carried, []
            return carried

    @property
    def woken(self) -> bool:
        """Whether anything woke the reader since its last `take`."""
        return self._ready.is_set()

    def wait(self, timeout: float) -> None:
        """Sleep until woken or ``timeout``; after a timeout the next `take` reads."""
        if not self._ready.wait(timeout):
            self.deliver(None)


class EventHub:
    """Per-task wake-ups for event readers, and a wake-up for idle workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, set[EventReader]] = {}
        self._work = threading.Condition()
        self._work_generation = 0
        self._cancel_listeners: list[Callable[[str], None]] = []

    @contextmanager
    def listen(self, task_id: str) -> Iterator[EventReader]:
        """A reader woken whenever ``task_id`` gets new events, for as long as it is open."""
        reader = EventReader()
        with self._lock:
            self._listeners.setdefault(task_id, set()).add(reader)
        try:
            yield reader
        finally:
            with self._lock:
                listeners = self._listeners.get(task_id)
                if listeners is not None:
                    listeners.discard(reader)
                    if not listeners:
                        del self._listeners[task_id]

    def published(self, task_id: str, events: list[TaskEvent] | None = None) -> None:
        """Wake the readers of ``task_id``; ``events``, when known, are what was written."""
        with self._lock:
            listeners = list(self._listeners.get(task_id, ()))
        for reader in listeners:
            reader.deliver(events)

    def notified(self, payload: str) -> None:
        """A notification on the task events channel: a task id, or the events themselves."""
        if not payload.startswith("{"):
            self.published(payload)
            return
        try:
            note = json.loads(payload)
            task_id = note["t"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed task events notification")
            return
        with self._lock:
            if task_id not in self._listeners:
                return  # nobody here reads that task: nothing to parse
        try:
            events = [
                TaskEvent(
                    id=int(event_id),
                    task_id=task_id,
                    type=EventType(kind),
                    body=json.loads(body),
                    created_at=datetime.fromisoformat(created_at),
                )
                for event_id, kind, body, created_at in note["e"]
            ]
        except (ValueError, KeyError, TypeError):
            events = None  # the readers read the database instead
        self.published(task_id, events)

    def work_available(self) -> None:
        """Wake idle workers: a task was dispatched, retried or recovered."""
        with self._work:
            self._work_generation += 1
            self._work.notify_all()

    @property
    def work_generation(self) -> int:
        """A counter `work_available` bumps; read it before looking for work."""
        with self._work:
            return self._work_generation

    def wait_for_work(self, timeout: float, since: int | None = None) -> None:
        """Sleep until `work_available` (after ``since``, a `work_generation`) or ``timeout``.

        Pass ``since`` read before the failed claim, so a dispatch between that claim and
        this call is not slept through.
        """
        with self._work:
            generation = self._work_generation if since is None else since
            self._work.wait_for(lambda: self._work_generation != generation, timeout)

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(task_id)`` when a task is cancelled in this process."""
        self._cancel_listeners.append(callback)

    def cancelled(self, task_id: str) -> None:
        """Tell in-process workers that ``task_id`` was cancelled."""
        for callback in list(self._cancel_listeners):
            callback(task_id)

    def wake_all(self) -> None:
        """Wake every reader and idle worker, to look at the database again."""
        with self._lock:
            listeners = [reader for readers in self._listeners.values() for reader in readers]
        for reader in listeners:
            reader.deliver(None)
        self.work_available()


#: A task event as the writer queues it: task id, type, body (JSON), createdAt.
_EventRow = tuple[str, EventType, str, datetime]


class EventWriter:
    """Writes log events in batches, each task's in the order they were logged, and wakes
    their readers.

    Running tasks log in bursts (a fetch of ten files is a dozen lines in a millisecond), and
    one transaction per line made concurrent tasks queue for the database (SQLite's single
    write lock; a round trip each on PostgreSQL). So writes combine: the thread that logs a
    line and finds no write in flight in its lane writes it at once, together with whatever
    else is queued there; lines logged while a write is in flight wait in the queue and go
    out with the next one, which the writing thread (or the next thread to log) does. One
    write at a time per lane keeps each lane's lines in order.

    A task's lines always take the same lane. On PostgreSQL there are `EVENT_WRITE_LANES`
    lanes, each with its own connection: in a busy worker a write in flight waits for the GIL
    after its round trip, and with one lane every line logged meanwhile waited behind it
    (per batch, p99 68-73 ms from a line to its write with two workers on 2 cores). SQLite
    admits one writer at a time anyway: one lane.

    An earlier version handed every line to a writer thread of its own. In a busy worker that
    thread queued for the GIL behind the task threads before each write, tens of
    milliseconds at p99 between a line and its reader; the thread that logs already holds
    it. `flush` returns once everything submitted before it is stored.
    """

    def __init__(self, store: SqlTaskStore, hub: EventHub, lanes: int | None = None) -> None:
        if lanes is None:
            lanes = EVENT_WRITE_LANES if store.notifies else 1
        self._lanes = [_EventLane(store, hub, number) for number in range(lanes)]

    def submit(self, task_id: str, type_: EventType, body: dict[str, Any]) -> None:
        """Store an event, with ``createdAt`` now; at once, or with the write in flight."""
        self._lane(task_id).submit(task_id, type_, body)

    def flush(self) -> None:
        """Return once every event submitted so far is in the database.

        It waits for the writes that take its events, or writes them itself when no write
        is in flight; it never queues for a write lock behind threads that keep logging.
        """
        targets = [lane.submitted() for lane in self._lanes]
        for lane, target in zip(self._lanes, targets, strict=True):
            lane.wait_written(target)

    def _lane(self, task_id: str) -> _EventLane:
        lanes = self._lanes
        return lanes[0] if len(lanes) == 1 else lanes[hash(task_id) % len(lanes)]


class _EventLane:
    """One lane of the `EventWriter`: a queue, one write at a time, its own connection."""

    def __init__(self, store: SqlTaskStore, hub: EventHub, number: int) -> None:
        self._store = store
        self._hub = hub
        self._number = number
        # (sequence number, row): the number orders submissions for `flush`.
        self._queue: queue.SimpleQueue[tuple[int, _EventRow]] = queue.SimpleQueue()
        self._order = threading.Lock()  # createdAt (and so the ids) never go backwards
        self._writing = threading.Lock()  # one write at a time, in queue order
        self._submitted = 0  # under _order
        self._written = 0  # under _stored: every submission up to here is stored
        self._stored = threading.Condition()

    def submit(self, task_id: str, type_: EventType, body: dict[str, Any]) -> None:
        data = dumps(body)
        with self._order:
            self._submitted += 1
            self._queue.put((self._submitted, (task_id, type_, data, utcnow())))
        self._drain()

    def submitted(self) -> int:
        """The sequence number of the last submission so far."""
        with self._order:
            return self._submitted

    def wait_written(self, target: int) -> None:
        """Return once every submission up to ``target`` is stored."""
        while True:
            with self._stored:
                # Bounded: a safety net, the write that takes our events notifies.
                if self._stored.wait_for(lambda: self._written >= target, timeout=0.05):
                    return
            self._drain()

    def _drain(self) -> None:
        # The check after the release closes the race with a thread whose own attempt
        # failed while this one still held the lock: its line is in the queue by then.
        while self._writing.acquire(blocking=False):
            try:
                while batch := self._take():
                    self._write(batch)
            finally:
                self._writing.release()
            if self._queue.empty():
                return

    def _take(self) -> list[tuple[int, _EventRow]]:
        items: list[tuple[int, _EventRow]] = []
        with contextlib.suppress(queue.Empty):
            while len(items) < MAX_EVENT_BATCH:
                items.append(self._queue.get_nowait())
        return items

    def _write(self, batch: list[tuple[int, _EventRow]]) -> None:
        events = [row for _, row in batch]
        try:
            self._store.emit_many(events, lane=self._number)
        except Exception:
            log.exception("writing %d task events failed", len(events))
        for task_id in {e[0] for e in events}:
            self._hub.published(task_id)
        with self._stored:
            self._written = batch[-1][0]  # in queue order: the highest yet
            self._stored.notify_all()


class TaskBroker:
    """Everything the API and the workers do with tasks, with wake-ups attached."""

    def __init__(
        self, store: SqlTaskStore, hub: EventHub | None = None, *, hear_events: bool = True
    ) -> None:
        """``hear_events=False`` (a ``scaffolder worker``, which serves no event stream): do
        not LISTEN for other processes' task events; every event batch anywhere in the
        deployment would otherwise reach it, to be parsed and dropped."""
        self.store = store
        self.hub = hub or EventHub()
        self.events = EventWriter(store, self.hub)
        self.listener: PgListener | None = None
        self._hears_events = hear_events
        if store.notifies:
            hub_ = self.hub
            handlers: dict[str, Callable[[str], None]] = {
                TASKS_CHANNEL: lambda _task_id: hub_.work_available(),
                TASK_CANCELS_CHANNEL: hub_.cancelled,
            }
            if hear_events:
                handlers[TASK_EVENTS_CHANNEL] = hub_.notified
            self.listener = PgListener(store.engine, handlers, on_reset=hub_.wake_all)

    @property
    def poll_seconds(self) -> float:
        """How long a waiter may sleep before it must look at the database itself."""
        if self.listener is not None and self.listener.connected:
            return NOTIFIED_POLL_SECONDS
        return CROSS_PROCESS_POLL_SECONDS

    @property
    def event_poll_seconds(self) -> float:
        """The same for a reader of task events (they are heard unless ``hear_events`` is off)."""
        return self.poll_seconds if self._hears_events else CROSS_PROCESS_POLL_SECONDS

    def start(self) -> None:
        """Start hearing other processes' writes (PostgreSQL; nothing to do on SQLite)."""
        if self.listener is not None:
            self.listener.start()

    def close(self) -> None:
        """Stop hearing other processes' writes; give back the event writer's connection."""
        if self.listener is not None:
            self.listener.close()
        self.store.close()

    def dispatch(
        self, *, spec: dict[str, Any], secrets: dict[str, str] | None, created_by: str | None
    ) -> str:
        """Store a new task and wake a worker."""
        task_id = self.store.create_task(spec=spec, secrets=secrets, created_by=created_by)
        self.hub.work_available()
        return task_id

    def emit(self, task_id: str, type_: EventType, body: dict[str, Any]) -> None:
        """Append an event (written within moments, in order) and wake its readers."""
        self.events.submit(task_id, type_, body)

    def complete(
        self,
        task_id: str,
        status: TaskStatus,
        body: dict[str, Any],
        *,
        generation: int | None = None,
        state: dict[str, Any] | None = None,
    ) -> TaskEvent:
        """Finish a task, after its log events, and wake its readers.

        ``generation`` is the run's claim generation: a run whose task was recovered
        meanwhile gets a `ConflictError` instead of finishing someone else's run. ``state``
        is stored with the completion (see `SqlTaskStore.complete_task`).
        """
        self.events.flush()
        event = self.store.complete_task(task_id, status, body, generation=generation, state=state)
        self.hub.published(task_id)
        return event

    def recover_stale(self, stale_seconds: float) -> list[RecoveredTask]:
        """Take back tasks whose worker stopped heartbeating ``stale_seconds`` ago."""
        recovered = self.store.recover_stale_tasks(utcnow() - timedelta(seconds=stale_seconds))
        self._taken_back(recovered)
        return recovered

    def release(self, task_id: str, *, generation: int, reason: str) -> RecoveredTask | None:
        """Hand back a task this worker will not finish (see `SqlTaskStore.release_task`)."""
        self.events.flush()
        released = self.store.release_task(task_id, generation=generation, reason=reason)
        self._taken_back([released] if released is not None else [])
        return released

    def _taken_back(self, tasks: list[RecoveredTask]) -> None:
        for task in tasks:
            self.hub.published(task.id)
        if any(task.reopened for task in tasks):
            self.hub.work_available()

    def cancel(self, task_id: str) -> None:
        """Record a cancel, stop the running step if it runs here, wake readers."""
        self.events.flush()  # the cancel names the step that logged last
        self.store.cancel_task(task_id)
        self.hub.cancelled(task_id)
        self.hub.published(task_id)

    def retry(self, task_id: str, *, secrets: dict[str, str] | None) -> None:
        """Reopen a finished task and wake a worker."""
        self.store.retry_task(task_id, secrets=secrets)
        self.hub.published(task_id)
        self.hub.work_available()

    def wait_for_events(
        self,
        task_id: str,
        after: int | None,
        timeout: float,
        stop: threading.Event | None = None,
        *,
        new_only: bool = False,
        reader: EventReader | None = None,
    ) -> list[TaskEvent]:
        """Events after ``after`` as soon as there are any, or ``[]`` after ``timeout``.

        Like Backstage, the completion event is always included, even when it is not after
        ``after``; ``new_only`` leaves it out then (an event stream that already sent it).
        A caller that waits again and again (an event stream) passes its own ``reader``
        (`EventHub.listen`), kept between calls: the events carried meanwhile are not lost,
        so only its first call reads the store.
        """
        deadline = time.monotonic() + timeout
        listening = contextlib.nullcontext(reader) if reader else self.hub.listen(task_id)
        with listening as reader:
            while True:
                carried = reader.take()
                if carried is not None and any(e.type is EventType.RECOVERED for e in carried):
                    carried = None  # a recovery may hide earlier events: the store decides
                if carried is None:
                    events = self.store.list_events(task_id, after)
                    if new_only and after is not None:
                        events = [e for e in events if e.id > after]
                else:
                    # Carried by the notification of their write; the reader registered before
                    # its first read, so nothing after that read is missed.
                    events = [e for e in carried if after is None or e.id > after]
                if events:
                    return events
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    return []
                reader.wait(min(remaining, self.event_poll_seconds))

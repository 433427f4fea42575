"""The PostgreSQL engine and the LISTEN thread on their own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from scaffolder.db.engine import create_engine
from scaffolder.db.postgres import TASK_EVENTS_CHANNEL
from scaffolder.errors import InputError
from scaffolder.tasks import broker as broker_module
from scaffolder.tasks.broker import TaskBroker
from scaffolder.tasks.model import EventType
from scaffolder.tasks.store import SqlTaskStore

ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


def test_postgres_urls_mean_psycopg() -> None:
    for url in ("postgresql://u@h/d", "postgres://u@h/d", "postgresql+psycopg://u@h/d"):
        engine = create_engine(url)
        assert engine.url.drivername == "postgresql+psycopg"
        engine.dispose()
    with pytest.raises(InputError, match="psycopg 3"):
        create_engine("postgresql+psycopg2://u@h/d")


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two engines on one database: two processes, as far as PostgreSQL can tell."""
    here, there = create_engine(db_url), create_engine(db_url)
    yield here, there
    here.dispose()
    there.dispose()


def _listener_pids(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN %'"
            )
        )
        return [row[0] for row in rows]


def _next_messages(
    broker: TaskBroker, task_id: str, after: int, write: Callable[[], object]
) -> list[str]:
    """What a reader waiting on ``broker`` gets when ``write`` happens while it waits."""
    got: list[str] = []

    def read() -> None:
        events = broker.wait_for_events(task_id, after, 60, new_only=True)
        got.extend(e.body["message"] for e in events)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)  # the reader is asleep by now: there was nothing to read
    write()
    reader.join(30)
    return got


@ON_POSTGRES
def test_events_from_another_engine_wake_a_reader_even_after_a_reconnect(
    engines: tuple[sa.Engine, sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the safety poll at an hour, only a notification wakes the reader within the test.
    monkeypatch.setattr(broker_module, "NOTIFIED_POLL_SECONDS", 3600.0)
    here, there = engines
    broker = TaskBroker(SqlTaskStore(here))
    writer = SqlTaskStore(there)
    broker.start()
    try:
        assert broker.listener is not None
        assert broker.listener.wait_connected(10)
        assert broker.poll_seconds == 3600.0
        task_id = writer.create_task(spec={"steps": []}, secrets=None, created_by=None)
        first = writer.emit(task_id, EventType.LOG, {"message": "one"})

        def emit(message: str) -> Callable[[], object]:
            return lambda: writer.emit(task_id, EventType.LOG, {"message": message})

        assert _next_messages(broker, task_id, first.id, emit("two")) == ["two"]

        # The server drops the LISTEN connection; the listener comes back on its own.
        [old_pid] = _listener_pids(there)
        with there.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": old_pid})
        deadline = time.monotonic() + 30
        while _listener_pids(there) in ([], [old_pid]):
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.05)
        assert broker.listener.wait_connected(10)
        last = writer.list_events(task_id)[-1].id
        assert _next_messages(broker, task_id, last, emit("three")) == ["three"]
    finally:
        broker.close()


@ON_POSTGRES
@pytest.mark.parametrize("single", [True, False])
def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    engines: tuple[sa.Engine, sa.Engine], single: bool
) -> None:
    """No ping round trip: the pool finds the server's goodbye on the idle socket."""
    from scaffolder.db.raw import RawDatabase

    engine, admin = engines
    db = RawDatabase(engine)
    with db.cursor(single=single) as cur:
        cur.execute("SELECT pg_backend_pid()")
        (first_pid,) = cur.fetchone()
    # The connection is back in the pool, idle; the server ends it (a restart, a terminate).
    _terminate(admin, first_pid)
    with db.cursor(single=single) as cur:
        cur.execute("SELECT pg_backend_pid()")
        (second_pid,) = cur.fetchone()
    assert second_pid != first_pid


def _terminate(admin: sa.Engine, pid: int) -> None:
    """End backend ``pid`` as a restart or an administrator would, and wait until it is gone."""
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            gone = not conn.execute(
                sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).first()
        if gone:
            return
        time.sleep(0.05)


@ON_POSTGRES
def test_the_event_writers_kept_connection_is_replaced_when_the_server_ends_it(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    """The connection kept for event writes: same liveness check as the pool's checkout, so
    a batch after a restart or a terminate is stored, not lost; a failed one is not reused."""
    engine, admin = engines
    store = SqlTaskStore(engine)
    try:
        task_id = store.create_task(spec={"steps": []}, secrets=None, created_by=None)
        store.emit_many([(task_id, EventType.LOG, {"message": "one"}, None)])
        _, kept = store._event_lanes[0]
        held = kept._connection
        first_pid = held.driver_connection.info.backend_pid
        _terminate(admin, first_pid)

        store.emit_many([(task_id, EventType.LOG, {"message": "two"}, None)])
        replacement = kept._connection
        assert replacement.driver_connection.info.backend_pid != first_pid

        # A statement that fails leaves no connection in doubt behind it.
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            store.emit_many([("no-such-task", EventType.LOG, {"message": "x"}, None)])
        assert kept._connection is None
        store.emit_many([(task_id, EventType.LOG, {"message": "three"}, None)])
        assert [e.body["message"] for e in store.list_events(task_id)] == ["one", "two", "three"]
    finally:
        store.close()
    # Closing gives the connection back: nothing is left checked out of the pool.
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@ON_POSTGRES
def test_a_worker_broker_hears_new_tasks_and_cancels_but_not_task_events(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    # A `scaffolder worker` serves no event stream: every event batch in the deployment would
    # reach it for nothing. It must still hear dispatches (to claim) and cancels.
    here, there = engines
    worker = TaskBroker(SqlTaskStore(here), hear_events=False)
    writer = TaskBroker(SqlTaskStore(there))
    cancelled: list[str] = []
    worker.hub.on_cancel(cancelled.append)
    worker.start()
    try:
        assert worker.listener is not None
        assert worker.listener.wait_connected(10)
        first = writer.store.create_task(spec={"steps": []}, secrets=None, created_by=None)
        with worker.hub.listen(first) as reader:
            generation = worker.hub.work_generation
            writer.store.emit(first, EventType.LOG, {"message": "not for workers"})
            writer.store.cancel_task(first)
            writer.store.create_task(spec={"steps": []}, secrets=None, created_by=None)
            # Notifications arrive in commit order: once the later ones are heard, the event
            # would have been too.
            worker.hub.wait_for_work(30, since=generation)
            assert worker.hub.work_generation != generation  # the second dispatch
            deadline = time.monotonic() + 30
            while first not in cancelled:
                assert time.monotonic() < deadline, "the cancel was not heard"
                time.sleep(0.01)
            assert not reader.woken
        # Should a worker process read events after all, it looks every second.
        assert worker.event_poll_seconds == broker_module.CROSS_PROCESS_POLL_SECONDS
    finally:
        worker.close()


def _heard(listen: psycopg.Connection[Any], count: int) -> list[str]:
    payloads: list[str] = []
    deadline = time.monotonic() + 10
    while len(payloads) < count:
        assert time.monotonic() < deadline, f"heard {payloads}"
        payloads += [note.payload for note in listen.notifies(timeout=0.5, stop_after=count)]
    return payloads


@ON_POSTGRES
def test_an_event_notification_carries_the_events_as_stored(db_url: str) -> None:
    """A woken reader gets the events from the notification: the same as reading them."""
    engine = create_engine(db_url)
    store = SqlTaskStore(engine)
    hub = broker_module.EventHub()
    try:
        with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as listen:
            listen.execute(f"LISTEN {TASK_EVENTS_CHANNEL}")
            task_id = store.create_task(spec={"steps": []}, secrets=None, created_by=None)
            other = store.create_task(spec={"steps": []}, secrets=None, created_by=None)
            with hub.listen(task_id) as reader:
                assert reader.take() is None  # a new reader always reads the store first
                store.emit_many(
                    [
                        (task_id, EventType.LOG, {"message": "één ✓", "stepId": "a"}, None),
                        (other, EventType.LOG, {"message": "elsewhere"}, None),
                        (task_id, EventType.COMPLETION, {"message": "done", "output": {}}, None),
                    ]
                )
                payloads = _heard(listen, 2)  # one per task in the batch
                for payload in payloads:
                    assert payload.startswith("{")
                    hub.notified(payload)
                assert reader.woken
                carried = reader.take()
            assert carried == store.list_events(task_id)
            assert [e.body["message"] for e in carried] == ["één ✓", "done"]
    finally:
        store.close()
        engine.dispose()


@ON_POSTGRES
def test_events_too_large_for_a_notification_are_announced_by_task_id(db_url: str) -> None:
    engine = create_engine(db_url)
    store = SqlTaskStore(engine)
    broker = TaskBroker(store)
    try:
        with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as listen:
            listen.execute(f"LISTEN {TASK_EVENTS_CHANNEL}")
            task_id = store.create_task(spec={"steps": []}, secrets=None, created_by=None)
            first = store.emit(task_id, EventType.LOG, {"message": "first"})
            _heard(listen, 1)
            big = "x" * 9000  # over PostgreSQL's 8000-byte payload limit
            with broker.hub.listen(task_id) as reader:
                reader.take()
                store.emit_many([(task_id, EventType.LOG, {"message": big}, None)])
                [payload] = _heard(listen, 1)
                assert payload == task_id
                broker.hub.notified(payload)
                assert reader.take() is None  # read the store
            # And a reader gets it all the same.
            [event] = broker.wait_for_events(task_id, first.id, 5, new_only=True)
            assert event.body["message"] == big
    finally:
        store.close()
        engine.dispose()

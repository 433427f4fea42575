"""The event writer: lines stored in the order logged, and flush bounded under load."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from scaffolder.db.engine import create_engine, upgrade
from scaffolder.tasks.broker import EventHub, EventWriter
from scaffolder.tasks.model import EventType
from scaffolder.tasks.store import SqlTaskStore

pytestmark = pytest.mark.both_engines


@pytest.fixture
def store(db_url: str) -> Iterator[SqlTaskStore]:
    engine: sa.Engine = create_engine(db_url)
    upgrade(engine)
    store = SqlTaskStore(engine)
    yield store
    store.close()
    engine.dispose()


def _task(store: SqlTaskStore) -> str:
    return store.create_task(spec={"steps": []}, secrets=None, created_by=None)


def _log_from_a_thread_each(writer: EventWriter, tasks: list[str], lines: int) -> None:
    """Each task logs ``lines`` lines ("<task id> <n>") from a thread of its own, all at once."""

    def log_lines(task_id: str) -> None:
        for n in range(lines):
            writer.submit(task_id, EventType.LOG, {"message": f"{task_id} {n}"})

    threads = [threading.Thread(target=log_lines, args=(t,)) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_lines_from_many_threads_are_stored_in_the_order_logged(store: SqlTaskStore) -> None:
    writer = EventWriter(store, EventHub())
    tasks = [_task(store) for _ in range(6)]
    _log_from_a_thread_each(writer, tasks, 40)
    writer.flush()
    for task_id in tasks:
        events = store.list_events(task_id)
        assert [e.body["message"] for e in events] == [f"{task_id} {n}" for n in range(40)]
        times = [e.created_at for e in events]
        assert times == sorted(times)
    ids = [e.id for t in tasks for e in store.list_events(t)]
    assert len(set(ids)) == len(ids) == 240


def test_flush_returns_while_other_threads_keep_logging(store: SqlTaskStore) -> None:
    # Threads that keep logging (as task threads do) keep the write lock busy; a flush must
    # return once its own lines are stored, not before, and not queue behind them for good.
    writer = EventWriter(store, EventHub())
    busy, mine = _task(store), _task(store)
    stop = threading.Event()

    def keep_logging() -> None:
        while not stop.wait(0.001):
            writer.submit(busy, EventType.LOG, {"message": "noise"})

    loggers = [threading.Thread(target=keep_logging) for _ in range(4)]
    for thread in loggers:
        thread.start()
    try:
        for n in range(20):
            writer.submit(mine, EventType.LOG, {"message": f"mine {n}"})
            writer.flush()
            stored = [e.body["message"] for e in store.list_events(mine)]
            assert stored == [f"mine {i}" for i in range(n + 1)]
    finally:
        stop.set()
        for thread in loggers:
            thread.join()


def test_a_flush_covers_every_lane_and_each_task_keeps_its_order(store: SqlTaskStore) -> None:
    writer = EventWriter(store, EventHub(), lanes=3)
    tasks: list[str] = []
    while len({writer._lane(t) for t in tasks}) < 3 or len(tasks) < 9:  # every lane gets some
        tasks.append(_task(store))
    _log_from_a_thread_each(writer, tasks, 30)
    writer.flush()  # one flush: every lane's lines are stored when it returns
    for task_id in tasks:
        messages = [e.body["message"] for e in store.list_events(task_id)]
        assert messages == [f"{task_id} {n}" for n in range(30)]
    if store.notifies:  # PostgreSQL: each lane wrote through a connection of its own
        assert sorted(store._event_lanes) == [0, 1, 2]

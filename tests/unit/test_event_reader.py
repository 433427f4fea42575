"""EventReader and wait_for_events: carried events are used as they are, anything else reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from scaffolder.db.engine import create_engine, upgrade
from scaffolder.tasks.broker import EventHub, TaskBroker
from scaffolder.tasks.model import EventType, TaskEvent
from scaffolder.tasks.store import SqlTaskStore

pytestmark = pytest.mark.both_engines


@pytest.fixture
def broker(db_url: str) -> Iterator[TaskBroker]:
    engine: sa.Engine = create_engine(db_url)
    upgrade(engine)
    broker = TaskBroker(SqlTaskStore(engine))
    yield broker
    broker.close()
    engine.dispose()


def _carried(task_id: str, event_id: int) -> TaskEvent:
    # Not in the store: only a reader that uses what it was handed can return it.
    return TaskEvent(
        id=event_id,
        task_id=task_id,
        type=EventType.LOG,
        body={"message": f"carried {event_id}"},
        created_at=datetime(2026, 11, 28),
    )


def test_a_kept_reader_reads_the_store_once_then_takes_what_it_is_handed(
    broker: TaskBroker,
) -> None:
    task_id = broker.store.create_task(spec={"steps": []}, secrets=None, created_by=None)
    stored = broker.store.emit(task_id, EventType.LOG, {"message": "stored"})
    with broker.hub.listen(task_id) as reader:
        assert broker.wait_for_events(task_id, None, 1, reader=reader) == [stored]
        # Handed while nobody waits (the stream is writing): kept for the next call.
        broker.hub.published(task_id, [_carried(task_id, stored.id + 1)])
        broker.hub.published(task_id, [_carried(task_id, stored.id + 2)])
        got = broker.wait_for_events(task_id, stored.id, 1, new_only=True, reader=reader)
        assert [e.body["message"] for e in got] == [
            f"carried {stored.id + 1}",
            f"carried {stored.id + 2}",
        ]
        # Already seen ones are dropped.
        broker.hub.published(task_id, [_carried(task_id, stored.id + 2)])
        assert broker.wait_for_events(task_id, stored.id + 2, 0.2, reader=reader) == []


def test_a_carried_recovery_makes_the_reader_read_the_store(broker: TaskBroker) -> None:
    task_id = broker.store.create_task(spec={"steps": []}, secrets=None, created_by=None)
    stored = broker.store.emit(task_id, EventType.LOG, {"message": "stored"})
    with broker.hub.listen(task_id) as reader:
        broker.wait_for_events(task_id, None, 1, reader=reader)
        recovered = TaskEvent(
            id=stored.id + 1,
            task_id=task_id,
            type=EventType.RECOVERED,
            body={"message": "recovered"},
            created_at=datetime(2026, 11, 28),
        )
        broker.hub.published(task_id, [recovered])
        # The store has nothing after `stored`, and the store decides.
        assert broker.wait_for_events(task_id, stored.id, 0.2, new_only=True, reader=reader) == []


def test_a_reader_reads_the_store_after_any_wake_up_without_events() -> None:
    hub = EventHub()
    with hub.listen("t") as reader:
        assert reader.take() is None
        hub.published("t", [])
        assert reader.take() == []
        hub.published("t")  # a write in this process: what it wrote is not known here
        assert reader.take() is None
        hub.published("t", [])
        hub.wake_all()  # the LISTEN connection was lost and is back
        assert reader.take() is None
        reader.wait(0.01)  # the safety poll
        assert reader.take() is None
        hub.notified('{"t": "t", "e": [[1, "log"]]}')  # not what we send: read instead
        assert reader.take() is None
        hub.notified("{not json")
        assert not reader.woken

"""The SQL task store: guarded state transitions, the global event sequence, secrets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from scaffolder.db.engine import create_engine, upgrade
from scaffolder.db.tables import tasks
from scaffolder.errors import ConflictError, NotFoundError
from scaffolder.tasks.model import EventType, TaskStatus
from scaffolder.tasks.store import SqlTaskStore, TaskFilter
from tests.postgres.cluster import PostgresServer

pytestmark = pytest.mark.both_engines


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> Iterator[SqlTaskStore]:
    store = SqlTaskStore(engine)
    yield store
    store.close()


def _spec() -> dict[str, object]:
    return {"apiVersion": "scaffolder.backstage.io/v1beta3", "steps": [], "output": {}}


def test_claim_is_exclusive_under_concurrency(store: SqlTaskStore) -> None:
    ids = {store.create_task(spec=_spec(), secrets=None, created_by=None) for _ in range(20)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all() -> None:
        while (task := store.claim_task()) is not None:
            with lock:
                claimed.append(task.id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)  # every task once, none twice


def test_claim_hands_secrets_over_and_drops_them(store: SqlTaskStore, engine: sa.Engine) -> None:
    task_id = store.create_task(spec=_spec(), secrets={"TOKEN": "x"}, created_by="user:default/a")
    claimed = store.claim_task()
    assert claimed is not None
    assert claimed.secrets == {"TOKEN": "x"}
    assert claimed.created_by == "user:default/a"
    with engine.connect() as conn:
        assert conn.execute(sa.select(tasks.c.secrets)).scalar_one() is None
    assert store.get_task(task_id).status is TaskStatus.PROCESSING


def test_claim_keeps_secrets_for_recovery_and_start_over(
    store: SqlTaskStore, engine: sa.Engine
) -> None:
    recovering = store.create_task(spec=_spec(), secrets={"TOKEN": "a"}, created_by=None)
    start_over = {**_spec(), "EXPERIMENTAL_recovery": {"EXPERIMENTAL_strategy": "startOver"}}
    restartable = store.create_task(spec=start_over, secrets={"TOKEN": "b"}, created_by=None)
    first = store.claim_task(keep_secrets=True)
    second = store.claim_task()  # recovery off, but the template asks to start over
    assert first is not None
    assert second is not None
    assert (first.id, first.secrets) == (recovering, {"TOKEN": "a"})
    assert (second.id, second.secrets) == (restartable, {"TOKEN": "b"})
    with engine.connect() as conn:
        kept = dict(conn.execute(sa.select(tasks.c.id, tasks.c.secrets)).all())
    assert kept[recovering] is not None
    assert kept[restartable] is not None


def test_claim_reports_creation_time_generation_and_first_run(store: SqlTaskStore) -> None:
    task_id = store.create_task(spec=_spec(), secrets=None, created_by=None)
    claimed = store.claim_task()
    assert claimed is not None
    assert claimed.first_run
    assert claimed.generation == 0
    assert claimed.created_at == store.get_task(task_id).created_at
    store.emit(task_id, EventType.LOG, {"message": "ran"})
    store.complete_task(task_id, TaskStatus.FAILED, {"message": "x"})
    store.retry_task(task_id, secrets=None)
    again = store.claim_task()
    assert again is not None
    assert again.id == task_id
    assert not again.first_run  # the earlier run's events are there


def test_complete_refuses_a_run_whose_task_was_recovered(store: SqlTaskStore) -> None:
    start_over = {**_spec(), "EXPERIMENTAL_recovery": {"EXPERIMENTAL_strategy": "startOver"}}
    task_id = store.create_task(spec=start_over, secrets=None, created_by=None)
    old_run = store.claim_task()
    assert old_run is not None
    recovered = store.recover_stale_tasks(datetime(9999, 1, 1))
    assert [(t.id, t.reopened) for t in recovered] == [(task_id, True)]
    new_run = store.claim_task()
    assert new_run is not None
    assert new_run.generation > old_run.generation
    with pytest.raises(ConflictError):  # processing again, but not the old run's any more
        store.complete_task(
            task_id, TaskStatus.COMPLETED, {"message": "late"}, generation=old_run.generation
        )
    done = store.complete_task(
        task_id, TaskStatus.COMPLETED, {"message": "done"}, generation=new_run.generation
    )
    completions = [e for e in store.list_events(task_id) if e.type is EventType.COMPLETION]
    assert [(e.id, e.body) for e in completions] == [(done.id, {"message": "done"})]


def test_a_kept_workspace_belongs_to_the_run_that_owns_the_task(store: SqlTaskStore) -> None:
    # CONTRACT §11.6: what a run that did not complete keeps for a re-run, and when it goes.
    start_over = {**_spec(), "EXPERIMENTAL_recovery": {"EXPERIMENTAL_strategy": "startOver"}}
    task_id = store.create_task(spec=start_over, secrets=None, created_by=None)
    assert store.load_workspace(task_id) is None
    run = store.claim_task()
    assert run is not None
    state: dict[str, Any] = {"steps": {"a": {"status": "completed", "output": {}}}}
    blob = bytes(range(256)) * 3  # not text: every byte value survives
    assert store.save_workspace(task_id, state, blob, generation=run.generation)
    assert store.load_workspace(task_id) == blob

    # Recovered meanwhile: the old run may no longer replace (or drop) what is kept.
    store.recover_stale_tasks(datetime(9999, 1, 1))
    new_run = store.claim_task()
    assert new_run is not None
    assert new_run.state == state  # the state went in with the archive
    assert not store.save_workspace(task_id, {}, b"late", generation=run.generation)
    assert not store.save_workspace(task_id, {}, None, generation=run.generation)
    assert store.load_workspace(task_id) == blob

    # Failed (or cancelled): kept for a retry. Completed: dropped.
    store.complete_task(task_id, TaskStatus.FAILED, {"message": "no"})
    assert store.load_workspace(task_id) == blob
    assert not store.save_workspace(task_id, state, b"x", generation=new_run.generation)
    store.retry_task(task_id, secrets=None)
    retried = store.claim_task()
    assert retried is not None
    assert store.load_workspace(task_id) == blob
    store.complete_task(task_id, TaskStatus.COMPLETED, {"message": "ok"})
    assert store.load_workspace(task_id) is None
    assert store.claim_task() is None


def test_the_workspace_column_is_added_to_existing_tasks(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    with ExitStack() as stack:
        if not db_url.startswith("sqlite"):  # the test databases come migrated
            server: PostgresServer = request.getfixturevalue("postgres")
            db_url = stack.enter_context(server.database(migrated=False))
        _upgrade_from_0003(db_url)


def _upgrade_from_0003(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, "0003")
        store = SqlTaskStore(engine)
        with engine.begin() as conn:
            assert "workspace" not in {c["name"] for c in sa.inspect(conn).get_columns("tasks")}
        task_id = store.create_task(spec=_spec(), secrets=None, created_by=None)
        upgrade(engine)
        with engine.begin() as conn:
            assert "workspace" in {c["name"] for c in sa.inspect(conn).get_columns("tasks")}
        assert store.load_workspace(task_id) is None
    finally:
        engine.dispose()


def test_complete_only_from_processing(store: SqlTaskStore) -> None:
    task_id = store.create_task(spec=_spec(), secrets=None, created_by=None)
    with pytest.raises(ConflictError):
        store.complete_task(task_id, TaskStatus.COMPLETED, {"message": "x"})
    store.claim_task()
    event = store.complete_task(task_id, TaskStatus.COMPLETED, {"message": "done"})
    assert event.type is EventType.COMPLETION
    with pytest.raises(ConflictError):
        store.complete_task(task_id, TaskStatus.FAILED, {"message": "again"})


def test_events_are_global_and_completion_always_listed(store: SqlTaskStore) -> None:
    a = store.create_task(spec=_spec(), secrets=None, created_by=None)
    b = store.create_task(spec=_spec(), secrets=None, created_by=None)
    e1 = store.emit(a, EventType.LOG, {"message": "a1"})
    e2 = store.emit(b, EventType.LOG, {"message": "b1"})
    assert e2.id == e1.id + 1
    store.claim_task()
    store.claim_task()
    done = store.complete_task(a, TaskStatus.COMPLETED, {"message": "ok"})
    assert [e.id for e in store.list_events(a, after=done.id)] == [done.id]
    assert [e.body["message"] for e in store.list_events(a)] == ["a1", "ok"]


def test_cancel_open_task_finishes_it(store: SqlTaskStore) -> None:
    task_id = store.create_task(spec=_spec(), secrets={"K": "v"}, created_by=None)
    cancelled, completion = store.cancel_task(task_id)
    assert cancelled.body == {
        "message": "Step 0 has been cancelled.",
        "stepId": "0",
        "status": "cancelled",
    }
    assert completion is not None
    assert store.get_task(task_id).status is TaskStatus.CANCELLED
    assert store.claim_task() is None
    with pytest.raises(NotFoundError):
        store.cancel_task("missing")


def test_retry_removes_completion_and_reopens(store: SqlTaskStore) -> None:
    task_id = store.create_task(spec=_spec(), secrets=None, created_by=None)
    with pytest.raises(ConflictError, match="cannot be retried"):
        store.retry_task(task_id, secrets=None)
    store.claim_task()
    store.complete_task(task_id, TaskStatus.FAILED, {"message": "no"})
    recovered = store.retry_task(task_id, secrets={"K": "v"})
    assert recovered.body == {"recoverStrategy": "none"}
    assert [e.type for e in store.list_events(task_id)] == [EventType.RECOVERED]
    assert store.get_task(task_id).status is TaskStatus.OPEN


def test_list_filters_and_counts(store: SqlTaskStore) -> None:
    for who in ("user:default/a", "user:default/b", None):
        store.create_task(spec=_spec(), secrets=None, created_by=who)
    tasks_, total = store.list_tasks(TaskFilter(created_by=["user:default/a"]))
    assert total == 1
    assert tasks_[0].created_by == "user:default/a"
    page, total = store.list_tasks(TaskFilter(limit=1, order=[("created_by", "asc")]))
    assert total == 3
    assert len(page) == 1


def test_timestamps_and_json_round_trip_identically(
    store: SqlTaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    moment = datetime(2026, 11, 27, 17, 3, 26, 123987)
    monkeypatch.setattr("scaffolder.tasks.store.utcnow", lambda: moment)
    spec = {**_spec(), "values": {"name": "été ✓", "n": 1.5, "deep": [{"a": None}], "e": ""}}
    task_id = store.create_task(spec=spec, secrets=None, created_by="user:default/a")
    store.emit(task_id, EventType.LOG, {"message": "line\n\u001b[32mgreen\u001b[39m"})
    store.claim_task()
    store.complete_task(task_id, TaskStatus.COMPLETED, {"message": "done", "output": {}})
    task = store.get_task(task_id)
    assert task.created_at == moment  # microseconds kept by both engines
    assert task.to_json() == {
        "id": task_id,
        "spec": spec,
        "status": "completed",
        "createdAt": "2026-11-27T17:03:26.123Z",
        "lastHeartbeatAt": "2026-11-27T17:03:26.123Z",
        "createdBy": "user:default/a",
    }
    events = [e.to_json(recoverable=False) for e in store.list_events(task_id)]
    assert [e["createdAt"] for e in events] == ["2026-11-27T17:03:26.123Z"] * 2
    assert events[0]["body"] == {"message": "line\n\u001b[32mgreen\u001b[39m"}
    assert events[1]["body"] == {"message": "done", "output": {}}


def test_list_order_is_the_same_on_both_engines(store: SqlTaskStore) -> None:
    for who in ("user:default/b", None, "user:default/B", "user:default/a"):
        store.create_task(spec=_spec(), secrets=None, created_by=who)
    ascending, _ = store.list_tasks(TaskFilter(order=[("created_by", "asc")]))
    descending, _ = store.list_tasks(TaskFilter(order=[("created_by", "desc")]))
    expected = [None, "user:default/B", "user:default/a", "user:default/b"]
    assert [t.created_by for t in ascending] == expected
    assert [t.created_by for t in descending] == expected[::-1]


def test_a_batch_of_events_keeps_order_bodies_and_times(store: SqlTaskStore) -> None:
    """The event writer's batch (one statement on PostgreSQL) stores what was logged, as it
    was logged: interleaved tasks in order, awkward text intact, each line's own time."""
    from scaffolder.tasks.model import dumps

    a = store.create_task(spec=_spec(), secrets=None, created_by=None)
    b = store.create_task(spec=_spec(), secrets=None, created_by=None)
    awkward = "quotes \" ' and \\ back, {braces}, new\nline, tab\t, ünïcødé ✓, \\u0000 as text"
    at = [datetime(2026, 11, 27, 12, 0, 0, 1000 * i) for i in range(6)]
    batch: list[tuple[str, EventType, dict[str, Any] | str, datetime | None]] = [
        (a, EventType.LOG, {"message": "a1"}, at[0]),
        (b, EventType.LOG, dumps({"message": awkward, "stepId": "x"}), at[1]),
        (a, EventType.LOG, {"message": awkward}, at[2]),
        (b, EventType.LOG, {"message": "b2", "nested": {"list": [1, 2.5, None]}}, at[3]),
        (a, EventType.LOG, {"message": "a3"}, None),
    ]
    store.emit_many(batch)
    events_a, events_b = store.list_events(a), store.list_events(b)
    assert [e.body for e in events_a] == [
        {"message": "a1"},
        {"message": awkward},
        {"message": "a3"},
    ]
    assert [e.body for e in events_b] == [
        {"message": awkward, "stepId": "x"},
        {"message": "b2", "nested": {"list": [1, 2.5, None]}},
    ]
    ids = sorted(e.id for e in [*events_a, *events_b])
    by_id = {e.id: e for e in [*events_a, *events_b]}
    assert [by_id[i].body["message"] for i in ids] == ["a1", awkward, awkward, "b2", "a3"]
    assert [e.created_at for e in events_a[:2]] == [at[0], at[2]]
    assert [e.created_at for e in events_b] == [at[1], at[3]]
    assert events_a[2].created_at is not None
    assert events_a[2].created_at > at[3]

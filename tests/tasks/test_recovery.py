"""Crash recovery, hand-back on shutdown and the lost-run guard, in one process.

A dead worker is played by claiming a task straight from the store and moving its heartbeat
into the past: no process heartbeats it any more, which is what a SIGKILL leaves behind
(``tests/faults`` kills real worker processes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from scaffolder.app import create_app
from scaffolder.errors import ConflictError
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks.model import EventType, TaskStatus, utcnow
from scaffolder.tasks.store import SqlTaskStore
from tests.conftest import wait_for_status
from tests.faults.harness import all_events, register, wait_until

pytestmark = pytest.mark.both_engines

START_OVER = {"EXPERIMENTAL_strategy": "startOver"}
LOG_STEPS = [{"id": "log", "name": "Log", "action": "debug:log", "input": {"message": "hi"}}]
WAIT_STEPS = [{"id": "wait", "name": "Wait", "action": "debug:wait", "input": {"seconds": 60}}]


def _spec(*, start_over: bool, steps: list[dict[str, Any]] = LOG_STEPS) -> dict[str, Any]:
    spec: dict[str, Any] = {"apiVersion": "scaffolder.backstage.io/v1beta3", "steps": steps}
    if start_over:
        spec["EXPERIMENTAL_recovery"] = START_OVER
    return spec


def _backdate(store: SqlTaskStore, seconds: float) -> None:
    """Every processing task last heartbeat ``seconds`` ago (its worker is gone)."""
    when = utcnow() - timedelta(seconds=seconds)
    value: Any = (
        when.strftime("%Y-%m-%d %H:%M:%S.%f") if store.engine.dialect.name == "sqlite" else when
    )
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE tasks SET last_heartbeat_at = :t WHERE status = 'processing'"),
            {"t": value},
        )


def _secrets(store: SqlTaskStore, task_id: str) -> str | None:
    with store.engine.connect() as conn:
        value: str | None = conn.execute(
            sa.text("SELECT secrets FROM tasks WHERE id = :t"), {"t": task_id}
        ).scalar_one()
    return value


def test_stale_tasks_are_recovered_exactly_once_by_racing_recoverers(idle: Services) -> None:
    store = idle.broker.store
    ids: dict[str, bool] = {}
    for i in range(20):
        spec = _spec(start_over=i % 2 == 0)
        ids[store.create_task(spec=spec, secrets={"t": "sek"}, created_by=None)] = i % 2 == 0
    while store.claim_task() is not None:
        pass
    _backdate(store, 120)
    fresh = store.create_task(spec=_spec(start_over=False), secrets=None, created_by=None)
    assert store.claim_task() is not None  # `fresh`: heartbeat now, not stale
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def recover() -> None:
        barrier.wait()
        stale_before = utcnow() - timedelta(seconds=30)
        results.append([t.id for t in store.recover_stale_tasks(stale_before)])

    threads = [threading.Thread(target=recover) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    taken = [task_id for batch in results for task_id in batch]
    assert len(results) == 4
    assert sorted(taken) == sorted(ids)  # each once, `fresh` not at all
    assert store.get_task(fresh).status is TaskStatus.PROCESSING

    for task_id, start_over in ids.items():
        events = all_events(store, task_id)
        recovered = [body for type_, body in events if type_ == "recovered"]
        assert recovered == [{"recoverStrategy": "startOver" if start_over else "none"}]
        if start_over:
            assert store.get_task(task_id).status is TaskStatus.OPEN
            assert _secrets(store, task_id) is not None  # kept for the next run
            assert [t for t, _ in events if t == "completion"] == []
        else:
            assert store.get_task(task_id).status is TaskStatus.FAILED
            assert _secrets(store, task_id) is None
            completion = events[-1]
            assert completion[0] == "completion"
            assert "lost connection to the task broker" in completion[1]["error"]["message"]


def test_a_run_whose_task_was_recovered_can_no_longer_complete_it(idle: Services) -> None:
    store = idle.broker.store
    task_id = store.create_task(spec=_spec(start_over=True), secrets=None, created_by=None)
    first = store.claim_task()
    assert first is not None
    _backdate(store, 120)
    assert [t.id for t in store.recover_stale_tasks(utcnow() - timedelta(seconds=30))] == [task_id]
    second = store.claim_task()
    assert second is not None
    assert second.generation > first.generation
    assert store.run_signals({task_id: first.generation}) == (set(), {task_id})
    assert store.run_signals({task_id: second.generation}) == (set(), set())
    with pytest.raises(ConflictError):
        store.complete_task(
            task_id, TaskStatus.COMPLETED, {"message": "old"}, generation=first.generation
        )
    store.complete_task(
        task_id, TaskStatus.COMPLETED, {"message": "new"}, generation=second.generation
    )
    assert store.get_task(task_id).status is TaskStatus.COMPLETED


def test_the_worker_recovers_tasks_a_dead_worker_left_processing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings({"scaffolder": {"taskRecovery": {"staleTimeout": {"seconds": 2}}}})
    # The dead worker: claimed both tasks, ran the first step of one, then vanished.
    dead = build_services(
        make_settings({"scaffolder": {"concurrentTasksLimit": 0}}), with_worker=False
    )
    store = dead.broker.store
    again = store.create_task(spec=_spec(start_over=True), secrets={"t": "sek"}, created_by=None)
    once = store.create_task(spec=_spec(start_over=False), secrets={"t": "sek"}, created_by=None)
    assert store.claim_task() is not None
    assert store.claim_task() is not None
    step = {"message": "Beginning step Log", "stepId": "log", "status": "processing"}
    store.emit(once, EventType.LOG, step)
    _backdate(store, 10)
    dead.close()

    services = build_services(settings)
    try:
        assert wait_for_status(services, again, timeout=30) == "completed"
        assert wait_for_status(services, once, timeout=30) == "failed"
        events = all_events(services, once)
        assert [t for t, _ in events] == ["log", "recovered", "log", "completion"]
        assert events[2][1]["stepId"] == "log"
        assert events[2][1]["status"] == "failed"
        again_events = all_events(services, again)
        assert [t for t, _ in again_events].count("recovered") == 1
        assert again_events[-1][1]["message"] == "Run completed with status: completed"
        # The listing shows the run that finished, from its recovered event on.
        listed = (
            create_app(services=services)
            .test_client()
            .get(f"/api/scaffolder/v2/tasks/{again}/events")
        )
        assert listed.json[0]["body"]["message"].startswith("Starting up task")
        assert all(e["isTaskRecoverable"] for e in listed.json)
    finally:
        services.close()


def stop_while_two_tasks_run(services: Services) -> tuple[str, str]:
    """Start a startOver task and a plain one (both wait), then stop the worker.

    Returns their ids: (the startOver one, the plain one).
    """
    register(services, "again", WAIT_STEPS, start_over=True)
    register(services, "once", WAIT_STEPS)
    client = create_app(services=services).test_client()
    again, once = (
        client.post(
            "/api/scaffolder/v2/tasks",
            json={"templateRef": f"template:default/{n}", "values": {}},
        ).json["id"]
        for n in ("again", "once")
    )
    worker = services.worker
    assert worker is not None
    wait_until(lambda: sorted(worker.running) == sorted([again, once]), 30, "both running")
    worker.stop()
    return again, once


def test_stop_hands_back_the_tasks_that_outlive_the_grace_period(
    make_settings: Callable[..., Settings],
) -> None:
    services = build_services(
        make_settings({"scaffolder": {"shutdownGracePeriod": {"milliseconds": 300}}})
    )
    try:
        again, once = stop_while_two_tasks_run(services)
        worker = services.worker
        assert worker is not None
        store = services.broker.store
        assert store.get_task(again).status is TaskStatus.OPEN
        assert store.get_task(once).status is TaskStatus.FAILED
        assert [t for t, _ in all_events(store, again)][-1] == "recovered"
        completion = all_events(store, once)[-1]
        assert completion[0] == "completion"
        assert "shutdown grace period" in completion[1]["error"]["message"]
        assert worker.running == []
    finally:
        services.close()


def test_a_run_recovered_by_another_process_stops_without_completing(
    services: Services,
) -> None:
    register(services, "once", WAIT_STEPS)
    client = create_app(services=services).test_client()
    task_id = client.post(
        "/api/scaffolder/v2/tasks", json={"templateRef": "template:default/once", "values": {}}
    ).json["id"]
    assert services.worker is not None
    worker = services.worker
    wait_until(lambda: worker.running == [task_id], 30, "the task to run")
    # Another process judged this worker dead (its clock, a long pause): the task is failed.
    taken = services.broker.store.recover_stale_tasks(utcnow() + timedelta(seconds=60))
    assert [t.id for t in taken] == [task_id]
    wait_until(lambda: worker.running == [], 30, "the run to stop")
    events = all_events(services, task_id)
    assert [t for t, _ in events].count("completion") == 1
    assert events[-1][0] == "completion"
    assert services.broker.store.get_task(task_id).status is TaskStatus.FAILED

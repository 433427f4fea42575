"""The stale-task janitor (CONTRACT §11.4): ``processing`` tasks whose heartbeat is older than
``scaffolder.taskTimeout`` fail, with a ``failed`` line for each step left running.

A dead worker is played as in ``test_recovery``: tasks claimed straight from the store, their
heartbeat moved into the past (``tests/faults/test_janitor_processes`` kills a real worker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from scaffolder.errors import ConflictError
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks.model import EventType, TaskStatus, utcnow
from scaffolder.tasks.store import STALE_TASK_MESSAGE, SqlTaskStore
from tests.conftest import wait_for_status
from tests.faults.harness import all_events
from tests.tasks.test_recovery import _backdate, _secrets, _spec

pytestmark = pytest.mark.both_engines

STALE_STEP = {"message": STALE_TASK_MESSAGE, "status": "failed"}


def _step(store: SqlTaskStore, task_id: str, step_id: str, status: str) -> None:
    message = "Finished step" if status == "completed" else "Beginning step"
    store.emit(task_id, EventType.LOG, {"message": message, "stepId": step_id, "status": status})


def _claimed(store: SqlTaskStore, spec: dict[str, Any]) -> str:
    task_id = store.create_task(spec=spec, secrets={"t": "sek"}, created_by=None)
    claimed = store.claim_task(keep_secrets=True)
    assert claimed is not None
    assert claimed.id == task_id
    return task_id


def test_the_janitor_fails_tasks_whose_heartbeat_exceeded_the_task_timeout(
    make_settings: Callable[..., Settings], idle: Services
) -> None:
    store = idle.broker.store
    # Ran step one, was in step two when its worker died.
    hung = _claimed(store, _spec(start_over=False))
    store.emit(hung, EventType.LOG, {"message": "Starting up task with 3 steps"})
    _step(store, hung, "one", "processing")
    _step(store, hung, "one", "completed")
    _step(store, hung, "two", "processing")
    # startOver, already recovered once: only the steps of its current run are left running.
    again = _claimed(store, _spec(start_over=True))
    _step(store, again, "a", "processing")
    store.emit(again, EventType.RECOVERED, {"recoverStrategy": "startOver"})
    _step(store, again, "a", "processing")
    _step(store, again, "a", "completed")
    _step(store, again, "b", "processing")
    _backdate(store, 120)
    fresh = _claimed(store, _spec(start_over=False))  # heartbeat now: not stale
    _step(store, fresh, "one", "processing")

    services = build_services(
        make_settings(
            {
                "scaffolder": {
                    "taskTimeout": {"seconds": 30},
                    "taskTimeoutJanitorFrequency": {"milliseconds": 100},
                    "taskRecovery": {"enabled": False},
                }
            }
        )
    )
    try:
        assert wait_for_status(services, hung) == "failed"
        assert wait_for_status(services, again) == "failed"  # not reopened, whatever its strategy
    finally:
        services.close()

    assert [body for _, body in all_events(store, hung)][4:] == [
        {**STALE_STEP, "stepId": "two"},
        {"message": STALE_TASK_MESSAGE},
    ]
    assert [type_ for type_, _ in all_events(store, hung)][4:] == ["log", "completion"]
    assert [body for _, body in all_events(store, again)][-2:] == [
        {**STALE_STEP, "stepId": "b"},
        {"message": STALE_TASK_MESSAGE},
    ]
    assert [b for _, b in all_events(store, again)].count({**STALE_STEP, "stepId": "a"}) == 0
    for task_id in (hung, again):
        assert _secrets(store, task_id) is None
    assert store.get_task(fresh).status is TaskStatus.PROCESSING
    assert _secrets(store, fresh) is not None
    assert [type_ for type_, _ in all_events(store, fresh)] == ["log"]


def test_racing_janitors_close_each_stale_task_exactly_once(idle: Services) -> None:
    store = idle.broker.store
    ids = []
    for i in range(12):
        task_id = _claimed(store, _spec(start_over=i % 3 == 0))
        _step(store, task_id, "one", "processing")
        ids.append(task_id)
    _backdate(store, 120)
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def close() -> None:
        barrier.wait()
        results.append(store.close_stale_tasks(utcnow() - timedelta(seconds=30)))

    threads = [threading.Thread(target=close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    closed = [task_id for batch in results for task_id in batch]
    assert len(results) == 4
    assert sorted(closed) == sorted(ids)  # each by exactly one janitor
    for task_id in ids:
        assert store.get_task(task_id).status is TaskStatus.FAILED
        assert [type_ for type_, _ in all_events(store, task_id)] == ["log", "log", "completion"]
        assert all_events(store, task_id)[1][1] == {**STALE_STEP, "stepId": "one"}
        # The run that was judged dead may no longer complete it.
        with pytest.raises(ConflictError):
            store.complete_task(task_id, TaskStatus.COMPLETED, {"message": "late"})
    assert store.close_stale_tasks(utcnow()) == []

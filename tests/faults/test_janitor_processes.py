"""A worker killed mid-task with recovery off: the other workers' janitors close the task once.

Two worker processes run the stale-task janitor every 200 ms against a 2 s task timeout, on
the same database: the task must end ``failed`` with exactly one completion and one
``failed`` line for the step that was running.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scaffolder.services import Services
from scaffolder.tasks.store import STALE_TASK_MESSAGE
from tests.faults.harness import (
    Paths,
    all_events,
    assert_no_secret_stored,
    create,
    register,
    status,
    steps,
    wait_until,
    worker_processes,
)

pytestmark = pytest.mark.both_engines


def _block_began(services: Services, task_id: str) -> bool:
    return ("log", {"stepId": "block", "status": "processing"}) in [
        (t, {k: v for k, v in b.items() if k != "message"})
        for t, b in all_events(services, task_id)
    ]


NO_RECOVERY = {"taskRecovery": {"enabled": False}}
JANITOR = {
    **NO_RECOVERY,
    "taskTimeout": {"seconds": 2},
    "taskTimeoutJanitorFrequency": {"milliseconds": 200},
}


def test_janitors_of_other_workers_close_a_dead_workers_task_once(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str, site: Path
) -> None:
    services, client = api
    paths = Paths(root=tmp_path / "effects")
    register(services, "hung", steps(paths), start_over=True)  # not reopened by the janitor

    with worker_processes(tmp_path, db_url, site, ("a",), scaffolder=NO_RECOVERY) as first:
        task_id = create(client, "hung")
        wait_until(lambda: paths.lines(paths.effects) == [task_id], 60, "the side effect")
        # The effect step writes its file before it logs its end: kill only once the next
        # step has begun, or the janitor rightly finds the effect step the unfinished one.
        wait_until(lambda: _block_began(services, task_id), 60, "the block step to begin")
        first["a"].kill()  # mid-task: waiting on the gate, forever
    assert status(services, task_id) == "processing"

    with worker_processes(tmp_path, db_url, site, ("b", "c"), scaffolder=JANITOR) as others:
        wait_until(lambda: status(services, task_id) == "failed", 60, "a janitor to close it")
        logs = [w.output() for w in others.values()]

    events = all_events(services, task_id)
    assert events[-2:] == [
        ("log", {"message": STALE_TASK_MESSAGE, "stepId": "block", "status": "failed"}),
        ("completion", {"message": STALE_TASK_MESSAGE}),
    ]
    assert [t for t, _ in events].count("completion") == 1
    assert [b for _, b in events].count(
        {"message": STALE_TASK_MESSAGE, "stepId": "block", "status": "failed"}
    ) == 1
    assert [b["status"] for _, b in events if b.get("stepId") == "effect" and "status" in b] == [
        "processing",
        "completed",
    ]
    assert paths.lines(paths.runs) == [task_id]  # never run again
    assert_no_secret_stored(services.engine)
    assert sum(f"closed stale task {task_id}" in log for log in logs) == 1, logs
    assert not any("Traceback" in log for log in logs), logs

"""Two worker processes racing for 200 tasks, and a step that fills its workspace's disk."""

from __future__ import annotations

import resource
from collections import Counter
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scaffolder.services import Services
from scaffolder.tasks.store import TaskFilter
from tests.faults.harness import (
    TERMINAL,
    Paths,
    assert_no_secret_stored,
    create,
    register,
    status,
    steps,
    wait_until,
    worker_processes,
)

pytestmark = pytest.mark.both_engines

#: The most a worker process may write to one file: the step's disk is "full" past it.
FILE_SIZE_LIMIT = 4 * 1024 * 1024


def test_two_workers_race_for_200_tasks(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str, site: Path
) -> None:
    services, client = api
    paths = Paths(root=tmp_path / "effects")
    register(services, "quick", steps(paths, block=False))
    count = 200
    with worker_processes(tmp_path, db_url, site, ("a", "b")):
        ids = [create(client, "quick") for _ in range(count)]
        wait_until(
            lambda: services.broker.store.list_tasks(TaskFilter(status=list(TERMINAL)))[1] == count,
            180,
            "every task to finish",
        )
    assert Counter(paths.lines(paths.runs)) == Counter(ids)  # each ran once, none lost
    assert Counter(paths.lines(paths.effects)) == Counter(ids)
    for task_id in ids:
        assert status(services, task_id) == "completed"
        types = [e.type.value for e in services.broker.store.list_events(task_id)]
        assert types.count("completion") == 1
    assert_no_secret_stored(services.engine)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def test_a_step_that_fills_the_disk_fails_the_task_clearly(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str, site: Path
) -> None:
    # RLIMIT_FSIZE on the worker process stands for a small workspace filesystem (no root or
    # loop device needed): writing past it fails with EFBIG as a full disk fails with ENOSPC.
    services, client = api
    paths = Paths(root=tmp_path / "effects")
    fill = {"id": "fill", "name": "Fill", "action": "fault:fill", "input": {"megabytes": 16}}
    register(services, "filler", [*steps(paths, block=False)[:1], fill, steps(paths)[-1]])
    register(services, "quick", steps(paths, block=False))
    with worker_processes(tmp_path, db_url, site, ("a",), preexec_fn=_limit_file_size) as workers:
        filled = create(client, "filler")
        wait_until(lambda: status(services, filled) in TERMINAL, 60, "the filling task to end")
        after = create(client, "quick")  # the worker goes on working
        wait_until(lambda: status(services, after) in TERMINAL, 60, "the next task to end")
        log = workers["a"].output()

    assert status(services, filled) == "failed"
    assert status(services, after) == "completed"
    events = services.broker.store.list_events(filled)
    fill_events = [e.body for e in events if e.body.get("stepId") == "fill"]
    assert [b.get("status") for b in fill_events if b.get("status")] == ["processing", "failed"]
    assert "File too large" in str(fill_events[-1]["message"])
    # Nothing after the failure is reported as done.
    assert [e.body.get("status") for e in events if e.body.get("stepId") == "done"] == ["skipped"]
    completion = events[-1]
    assert completion.type.value == "completion"
    assert "File too large" in completion.body["error"]["message"]
    assert "output" not in completion.body
    assert not (tmp_path / "work-a" / filled).exists()  # its workspace is gone
    assert paths.lines(paths.effects).count(filled) == 1
    assert "Traceback" not in log, log
    assert_no_secret_stored(services.engine)

"""A worker killed with SIGKILL, or stopped with SIGTERM, in the middle of its tasks.

Every test checks: no task lost (each reaches a final status), none run twice (the
checkpointed side effect happens once per task), no secret stored, a clear final status.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scaffolder.services import Services
from tests.faults.harness import (
    SECRET,
    TERMINAL,
    Paths,
    all_events,
    assert_no_secret_stored,
    create,
    encoded_secrets,
    register,
    status,
    steps,
    wait_until,
    worker_processes,
)

pytestmark = pytest.mark.both_engines

#: Short enough for a test, long enough that a loaded machine's 1 s heartbeats stay fresh.
RECOVERY = {"taskRecovery": {"staleTimeout": {"seconds": 3}}}


def _check_effect_log_redacted(services: Services, task_id: str) -> None:
    effect_lines = [
        str(body["message"])
        for type_, body in all_events(services, task_id)
        if type_ == "log" and body.get("stepId") == "effect" and "token" in str(body["message"])
    ]
    assert effect_lines, "the effect step logged nothing"
    for line in effect_lines:
        assert "token *** b64 *** urlsafe *** quoted *** plus *** header" in line, line
        assert line.endswith("Basic eC1hY2Nlc3MtdG9rZW46***"), line  # "x-access-token:" + ***


def _check_resumed_after_effect(services: Services, task_id: str) -> None:
    """The run after the recovery skipped the saved ``effect`` step and ran the others."""
    events = all_events(services, task_id)
    last_recovery = max(i for i, (type_, _) in enumerate(events) if type_ == "recovered")
    rerun = [body for type_, body in events[last_recovery + 1 :] if type_ == "log"]
    assert rerun[1] == {
        "message": "Task recovered - resuming from last known good state. "
        "1 step(s) already completed."
    }
    assert rerun[2] == {
        "message": "Skipping step effect because it was already completed in a previous run",
        "stepId": "effect",
        "status": "completed",
    }
    assert [b["stepId"] for b in rerun if b.get("status") == "processing"] == ["block", "done"]


def _check_ran_all_again(services: Services, task_id: str) -> None:
    """The run after the recovery had nothing kept (steps are stored when a run ends, and the
    killed run never ended): it ran every step again."""
    events = all_events(services, task_id)
    last_recovery = max(i for i, (type_, _) in enumerate(events) if type_ == "recovered")
    rerun = [body for type_, body in events[last_recovery + 1 :] if type_ == "log"]
    assert rerun[0] == {"message": "Starting up task with 3 steps"}
    assert not [b for b in rerun if str(b["message"]).startswith(("Task recovered", "Skipping"))]
    processing = [b["stepId"] for b in rerun if b.get("status") == "processing"]
    assert processing == ["effect", "block", "done"]


def _kept_workspace(services: Services, task_id: str) -> bytes | None:
    return services.broker.store.load_workspace(task_id)


def test_sigkill_mid_task_recovers_on_another_worker(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str, site: Path
) -> None:
    services, client = api
    paths = Paths(root=tmp_path / "effects")
    register(services, "again", steps(paths), start_over=True)
    register(services, "once", steps(paths))

    with worker_processes(tmp_path, db_url, site, ("a",), scaffolder=RECOVERY) as first:
        again, once = create(client, "again"), create(client, "once")
        wait_until(
            lambda: sorted(paths.lines(paths.effects)) == sorted([again, once]),
            60,
            "both tasks to pass their side effect",
        )
        with worker_processes(tmp_path, db_url, site, ("b",), scaffolder=RECOVERY) as second:
            first["a"].kill()  # mid-task: both wait on the gate
            assert status(services, again) == "processing"
            assert status(services, once) == "processing"
            paths.gate.touch()
            wait_until(
                lambda: status(services, again) in TERMINAL and status(services, once) in TERMINAL,
                90,
                "the other worker to recover both tasks",
            )
            b_log = second["b"].output()

    # startOver: run again on b. The effect step completed before the kill, but a killed
    # worker kept no workspace for it (CONTRACT §11.6): b runs every step again, and the
    # checkpoint keeps the side effect from repeating.
    assert status(services, again) == "completed"
    assert paths.lines(paths.runs).count(again) == 2
    assert paths.lines(paths.effects).count(again) == 1
    _check_ran_all_again(services, again)
    again_types = [t for t, _ in all_events(services, again)]
    assert again_types.count("recovered") == 1
    assert again_types.count("completion") == 1
    assert [b for t, b in all_events(services, again) if t == "recovered"] == [
        {"recoverStrategy": "startOver"}
    ]
    # Not startOver: failed with a recovered event and a message saying why.
    assert status(services, once) == "failed"
    assert paths.lines(paths.runs).count(once) == 1
    assert paths.lines(paths.effects).count(once) == 1
    listed = client.get(f"/api/scaffolder/v2/tasks/{once}/events").json
    assert [e["type"] for e in listed][-3:] == ["recovered", "log", "completion"]
    assert listed[-3]["body"] == {"recoverStrategy": "none"}
    assert "lost connection to the task broker" in listed[-1]["body"]["error"]["message"]
    assert [e["body"].get("status") for e in listed if e["body"].get("stepId") == "block"] == [
        "processing",
        "failed",
    ]

    for task_id in (again, once):
        _check_effect_log_redacted(services, task_id)
    assert_no_secret_stored(services.engine)
    assert "Traceback" not in b_log, b_log
    assert not any(form in b_log for form in encoded_secrets())


def test_sigterm_drains_then_hands_back(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str, site: Path
) -> None:
    services, client = api
    paths = Paths(root=tmp_path / "effects")
    finishing = Paths(root=tmp_path / "finishing")
    register(services, "again", steps(paths), start_over=True)
    register(services, "once", steps(paths))
    register(services, "finishing", steps(finishing))
    draining = {**RECOVERY, "shutdownGracePeriod": {"seconds": 3}}

    with worker_processes(tmp_path, db_url, site, ("a",), scaffolder=draining) as first:
        ids = {name: create(client, name) for name in ("again", "once", "finishing")}
        wait_until(
            lambda: len(paths.lines(paths.effects)) == 2 and finishing.lines(finishing.effects),
            60,
            "the three tasks to pass their side effect",
        )
        first["a"].proc.send_signal(15)  # SIGTERM: stop claiming, give running tasks the grace
        finishing.gate.touch()  # this one finishes within the grace period
        assert first["a"].proc.wait(timeout=60) == 0, first["a"].output()
        a_log = first["a"].output()
    assert "Traceback" not in a_log, a_log

    assert status(services, ids["finishing"]) == "completed"
    assert status(services, ids["once"]) == "failed"
    once_events = all_events(services, ids["once"])
    assert once_events[-1][0] == "completion"
    message = str(once_events[-1][1]["error"])
    assert "shut down" in message
    assert "scaffolder.shutdownGracePeriod" in message
    # startOver: handed back at once, open for another worker (never left processing), with
    # its workspace kept for the steps it completed; so is the failed one's, for a retry.
    assert status(services, ids["again"]) == "open"
    assert _kept_workspace(services, ids["again"]) is not None
    assert _kept_workspace(services, ids["once"]) is not None
    assert _kept_workspace(services, ids["finishing"]) is None
    assert all_events(services, ids["again"])[-1] == (
        "recovered",
        {"recoverStrategy": "startOver"},
    )

    paths.gate.touch()
    with worker_processes(tmp_path, db_url, site, ("b",), scaffolder=RECOVERY):
        wait_until(lambda: status(services, ids["again"]) in TERMINAL, 60, "b to run it")
    assert status(services, ids["again"]) == "completed"
    assert paths.lines(paths.effects).count(ids["again"]) == 1
    assert paths.lines(paths.runs).count(ids["again"]) == 1  # b skipped the completed step
    _check_resumed_after_effect(services, ids["again"])
    assert _kept_workspace(services, ids["again"]) is None  # completed: dropped
    assert paths.lines(paths.runs).count(ids["once"]) == 1
    for task_id in ids.values():
        assert [t for t, _ in all_events(services, task_id)].count("completion") == 1
        _check_effect_log_redacted(services, task_id)
    assert_no_secret_stored(services.engine)
    assert SECRET not in a_log

"""Step-state resume (CONTRACT §11.6): a re-run of a task skips the steps an earlier run
completed and restores their outputs (their files: tests/tasks/test_workspace_resume.py).

Each action counts its runs per task, so a skipped step shows as a count of one across two
runs; ``test:record`` keeps what a later step was given, so a restored output shows as the
value the first run made.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks.model import utcnow
from tests.conftest import wait_for_status
from tests.faults.harness import all_events, register, wait_until

pytestmark = pytest.mark.both_engines

SCAFFOLDER = "/api/scaffolder"
RESUMED = "Task recovered - resuming from last known good state. {n} step(s) already completed."
SKIPPED = "Skipping step {id} because it was already completed in a previous run"


@dataclass
class Actions:
    """The test actions and what they saw, per task."""

    runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)
    recorded: dict[str, list[Any]] = field(default_factory=dict)
    gate_entered: threading.Event = field(default_factory=threading.Event)
    gate_log: list[str] = field(default_factory=list)

    def count(self, ctx: ActionContext) -> int:
        self.runs[(ctx.task_id, ctx.step_id)] += 1
        return self.runs[(ctx.task_id, ctx.step_id)]

    def make(self, ctx: ActionContext) -> None:
        n = self.count(ctx)
        ctx.checkpoint("effect", lambda: self.effects.update([ctx.task_id]))
        ctx.output("token", f"made-{n}")
        ctx.output("parts", {"n": n})

    def gate(self, ctx: ActionContext) -> None:
        """The first run waits until it is stopped (its task taken from it); later ones pass."""
        n = self.count(ctx)
        self.gate_log.append(f"enter {n}")
        if n == 1:
            self.gate_entered.set()
            stopped = ctx.signal.wait(60)
            self.gate_log.append(f"exit {n} {'stopped' if stopped else 'timed out'}")

    def flaky(self, ctx: ActionContext) -> None:
        if self.count(ctx) == 1:
            raise RuntimeError("first time fails")

    def record(self, ctx: ActionContext) -> None:
        self.count(ctx)
        self.recorded.setdefault(ctx.task_id, []).append(ctx.input["value"])


def _services(make_settings: Callable[..., Settings], recovery: bool) -> Services:
    return build_services(make_settings({"scaffolder": {"taskRecovery": {"enabled": recovery}}}))


@pytest.fixture
def actions() -> Actions:
    return Actions()


def _register(services: Services, actions: Actions) -> None:
    for name in ("make", "gate", "flaky", "record"):
        services.registry.register(
            TemplateAction(id=f"test:{name}", handler=getattr(actions, name))
        )


def _template(services: Services, name: str, middle: str, *, start_over: bool) -> None:
    register(
        services,
        name,
        [
            {"id": "make", "name": "Make", "action": "test:make"},
            {"id": "middle", "name": "Middle", "action": f"test:{middle}"},
            {
                "id": "use",
                "name": "Use",
                "action": "test:record",
                "input": {"value": "${{ steps.make.output.token }}"},
            },
        ],
        start_over=start_over,
        output={
            "token": "${{ steps.make.output.token }}",
            "n": "${{ steps.make.output.parts.n }}",
        },
    )


def _create(client: FlaskClient, name: str) -> str:
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks", json={"templateRef": f"template:default/{name}", "values": {}}
    )
    assert res.status_code == 201, res.json
    return str(res.json["id"])


def _last_run(services: Services, task_id: str) -> list[dict[str, Any]]:
    """The log lines after the task's last ``recovered`` event (its latest run)."""
    events = all_events(services, task_id)
    start = max(i for i, (type_, _) in enumerate(events) if type_ == "recovered")
    return [body for type_, body in events[start + 1 :] if type_ == "log"]


def _state(services: Services, task_id: str) -> Any:
    with services.engine.connect() as conn:
        text = conn.execute(
            sa.text("SELECT state FROM tasks WHERE id = :t"), {"t": task_id}
        ).scalar_one()
    return json.loads(text) if text else None


def _completion(services: Services, task_id: str) -> dict[str, Any]:
    completions = [b for t, b in all_events(services, task_id) if t == "completion"]
    assert len(completions) == 1
    return completions[0]


@pytest.fixture
def resumable(
    make_settings: Callable[..., Settings], actions: Actions, request: pytest.FixtureRequest
) -> Iterator[Services]:
    services = _services(make_settings, getattr(request, "param", True))
    _register(services, actions)
    yield services
    services.close()


@pytest.mark.parametrize("resumable", [True, False], indirect=True, ids=["on", "off"])
def test_a_recovered_start_over_task_runs_every_step_again_without_a_kept_workspace(
    resumable: Services, actions: Actions
) -> None:
    # startOver keeps step state whether or not recovery is enabled, stored when the run
    # ends (with its workspace, or with the completion). A recovered task's worker is taken
    # for dead: it stored neither (the run here, taken from, may not), so every step runs
    # again (§11.6). The checkpoint, stored at once, keeps the side effect from repeating.
    services = resumable
    _template(services, "again", "gate", start_over=True)
    task_id = _create(create_app(services=services).test_client(), "again")
    assert actions.gate_entered.wait(30)
    services.broker.events.flush()  # the first run's lines so far, before its recovery
    mid_run = _state(services, task_id)["state"]
    assert "v1.task.checkpoint.make.effect" in mid_run["checkpoints"]
    assert "steps" not in mid_run  # not after each step: only when the run ends
    # Another process judged this run's worker dead: the task is reopened to start over,
    # the run here is told to stop, and the worker claims the task again.
    recovered = services.broker.store.recover_stale_tasks(utcnow() + timedelta(seconds=60))
    assert [t.id for t in recovered] == [task_id]
    services.broker.hub.work_available()

    assert wait_for_status(services, task_id, timeout=30) == "completed"
    assert actions.runs[(task_id, "make")] == 2  # run again: its files were not kept
    assert actions.effects[task_id] == 1  # its checkpoint held
    assert actions.runs[(task_id, "middle")] == 2
    assert actions.recorded[task_id] == ["made-2"]  # the second run's output
    assert _completion(services, task_id)["output"] == {"token": "made-2", "n": 2}

    rerun = _last_run(services, task_id)
    assert rerun[:2] == [
        {"message": "Starting up task with 3 steps"},
        {"message": "Beginning step Make", "stepId": "make", "status": "processing"},
    ]
    messages = [b["message"] for b in rerun]
    assert not [m for m in messages if m.startswith(("Task recovered", "Skipping step"))]

    # Checkpoints and completed steps share the one state document; the steps are this
    # run's.
    state = _state(services, task_id)["state"]
    assert set(state) == {"checkpoints", "steps"}
    assert "v1.task.checkpoint.make.effect" in state["checkpoints"]
    assert state["steps"]["make"] == {
        "status": "completed",
        "output": {"token": "made-2", "parts": {"n": 2}},
    }
    assert set(state["steps"]) == {"make", "middle", "use"}
    # The first run was stopped (not left blocking) before the second began: they share the
    # workspace directory. It did not complete the task (one completion, checked above).
    assert actions.gate_log == ["enter 1", "exit 1 stopped", "enter 2"]
    assert services.worker is not None
    worker = services.worker
    wait_until(lambda: worker.running == [], 30, "the worker to be idle")


def test_a_retried_task_resumes_after_its_last_completed_step(
    resumable: Services, actions: Actions
) -> None:
    services = resumable
    client = create_app(services=services).test_client()
    _template(services, "flaky", "flaky", start_over=False)
    task_id = _create(client, "flaky")
    assert wait_for_status(services, task_id) == "failed"
    assert _state(services, task_id)["state"]["steps"] == {
        "make": {"status": "completed", "output": {"token": "made-1", "parts": {"n": 1}}}
    }

    assert client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={}).status_code == 201
    assert wait_for_status(services, task_id) == "completed"
    assert actions.runs[(task_id, "make")] == 1
    assert actions.runs[(task_id, "middle")] == 2
    assert actions.recorded[task_id] == ["made-1"]
    assert _completion(services, task_id)["output"] == {"token": "made-1", "n": 1}
    rerun = _last_run(services, task_id)
    assert rerun[1:3] == [
        {"message": RESUMED.format(n=1)},
        {"message": SKIPPED.format(id="make"), "stepId": "make", "status": "completed"},
    ]
    # The API lists the first run and the retry (no startOver): the skipped step's events.
    listed = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    make_statuses = [e["body"].get("status") for e in listed if e["body"].get("stepId") == "make"]
    assert make_statuses == ["processing", "completed", "completed"]

    # A retry of the completed task skips every step and renders the same output again.
    assert client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={}).status_code == 201
    assert wait_for_status(services, task_id) == "completed"
    assert sum(n for (t, _), n in actions.runs.items() if t == task_id) == 4
    assert _last_run(services, task_id)[1] == {"message": RESUMED.format(n=3)}
    assert _completion(services, task_id)["output"] == {"token": "made-1", "n": 1}


@pytest.mark.parametrize("resumable", [False], indirect=True, ids=["off"])
def test_without_recovery_or_start_over_nothing_is_saved_or_skipped(
    resumable: Services, actions: Actions
) -> None:
    services = resumable
    client = create_app(services=services).test_client()
    _template(services, "flaky", "flaky", start_over=False)
    task_id = _create(client, "flaky")
    assert wait_for_status(services, task_id) == "failed"
    state = _state(services, task_id)
    assert state is not None
    assert "steps" not in state["state"]  # checkpoints only

    assert client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={}).status_code == 201
    assert wait_for_status(services, task_id) == "completed"
    assert actions.runs[(task_id, "make")] == 2
    assert actions.effects[task_id] == 1  # the checkpoint still holds
    assert actions.recorded[task_id] == ["made-2"]
    messages = [b["message"] for b in _last_run(services, task_id)]
    assert not [m for m in messages if m.startswith(("Task recovered", "Skipping step make"))]
    assert "Beginning step Make" in messages
    assert "steps" not in _state(services, task_id)["state"]

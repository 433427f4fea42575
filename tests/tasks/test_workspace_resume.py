"""A re-run that skips completed steps gets their files back (CONTRACT §11.6).

A run that ends without completing keeps its workspace (a gzipped tar) in the task row; the
retry unpacks it before it skips the saved steps. Without a usable archive (none kept, over
the cap, or refused as unsafe) the retry runs every step again and says why; checkpoints
still keep side effects from repeating.

``test:read`` reads a workspace file every time it runs, and fails its first run (a publish
that hit a remote outage), so the retry's read shows whether the skipped step's file is there.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks.workspace_archive import STEPS_HEADER
from tests.conftest import FIXTURE_TEMPLATES, wait_for_status
from tests.faults.harness import all_events

pytestmark = pytest.mark.both_engines

SCAFFOLDER = "/api/scaffolder"
RESUMED = "Task recovered - resuming from last known good state. 1 step(s) already completed."
NOT_AVAILABLE = "Workspace of the previous run is not available; running all 2 steps again"
#: What the hello skeleton's src/app.txt renders to with the template's values.
APP_TXT = "APP_NAME=svc-one\nAPP_PORT=8080\n"


@dataclass
class Actions:
    """The test actions and what they saw."""

    runs: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)
    read: list[str | None] = field(default_factory=list)
    #: How many of ``test:read``'s first runs fail.
    failures: int = 1

    def read_file(self, ctx: ActionContext) -> None:
        self.runs["read"] += 1
        path = ctx.workspace_path / ctx.input["path"]
        content = path.read_text() if path.is_file() else None
        self.read.append(content)
        if self.runs["read"] <= self.failures:
            raise RuntimeError("the remote is down")
        if content is None:
            raise FileNotFoundError(f"{ctx.input['path']} is not in the workspace")
        ctx.output("content", content)

    def noise(self, ctx: ActionContext) -> None:
        """Incompressible bytes in the workspace, behind a side effect made once."""
        self.runs["noise"] += 1
        ctx.checkpoint("effect", lambda: self.effects.update(["noise"]))
        (ctx.workspace_path / "noise.bin").write_bytes(os.urandom(int(ctx.input["bytes"])))
        (ctx.workspace_path / "small.txt").write_text("small")

    def grow(self, ctx: ActionContext) -> None:
        """Fails twice: first small, then after filling the workspace past the test's cap."""
        self.runs["grow"] += 1
        if self.runs["grow"] == 2:
            (ctx.workspace_path / "grown.bin").write_bytes(os.urandom(65536))
        if self.runs["grow"] <= 2:
            raise RuntimeError("not yet")
        if not (ctx.workspace_path / "small.txt").is_file():
            raise FileNotFoundError("small.txt is not in the workspace")


@pytest.fixture
def actions() -> Actions:
    return Actions()


def _start(settings: Settings, actions: Actions) -> Services:
    services = build_services(settings)
    services.registry.register(TemplateAction(id="test:read", handler=actions.read_file))
    services.registry.register(TemplateAction(id="test:noise", handler=actions.noise))
    services.registry.register(TemplateAction(id="test:grow", handler=actions.grow))
    return services


@pytest.fixture
def services(make_settings: Callable[..., Settings], actions: Actions) -> Iterator[Services]:
    built = _start(make_settings(), actions)
    yield built
    built.close()


def _register(services: Services, first: dict[str, Any], read: str) -> None:
    """``first`` then ``publish`` (``test:read`` of ``read``), beside the hello skeleton."""
    services.catalog.replace_location(
        f"file:{FIXTURE_TEMPLATES}/hello-template/resume.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": "resume"},
                "spec": {
                    "type": "service",
                    "parameters": [],
                    "steps": [
                        first,
                        {
                            "id": "publish",
                            "name": "Publish",
                            "action": "test:read",
                            "input": {"path": read},
                        },
                    ],
                    "output": {"content": "${{ steps.publish.output.content }}"},
                },
            }
        ],
    )


FETCH = {
    "id": "fetch",
    "name": "Fetch skeleton",
    "action": "fetch:template",
    "input": {
        "url": "./skeleton",
        "values": {
            "name": "svc-one",
            "description": "d",
            "owner": "group:default/platform",
            "language": "python",
            "port": 8080,
        },
    },
}


def _create(client: FlaskClient) -> str:
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks", json={"templateRef": "template:default/resume", "values": {}}
    )
    assert res.status_code == 201, res.json
    return str(res.json["id"])


def _retry(client: FlaskClient, task_id: str) -> None:
    assert client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={}).status_code == 201


def _last_run(services: Services, task_id: str) -> list[str]:
    """The log messages after the task's last ``recovered`` event (its latest run)."""
    events = all_events(services, task_id)
    start = max(i for i, (type_, _) in enumerate(events) if type_ == "recovered")
    return [str(body["message"]) for type_, body in events[start + 1 :] if type_ == "log"]


def _column(services: Services, task_id: str, name: str) -> Any:
    with services.engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT {name} FROM tasks WHERE id = :t"), {"t": task_id}
        ).scalar_one()


def _completion(services: Services, task_id: str) -> dict[str, Any]:
    return [b for t, b in all_events(services, task_id) if t == "completion"][-1]


def test_a_retry_finds_the_files_of_the_steps_it_skips(
    services: Services, actions: Actions, client: FlaskClient
) -> None:
    _register(services, FETCH, read="src/app.txt")
    task_id = _create(client)
    assert wait_for_status(services, task_id) == "failed"
    assert actions.read == [APP_TXT]
    # The run is over and its directory gone; its files wait in the task row.
    assert not (services.settings.working_directory / task_id).exists()
    assert _column(services, task_id, "workspace") is not None
    assert set(json.loads(_column(services, task_id, "state"))["state"]["steps"]) == {"fetch"}

    _retry(client, task_id)
    assert wait_for_status(services, task_id) == "completed"
    # fetch was skipped, and publish read the file fetch had written in the first run.
    assert actions.read == [APP_TXT, APP_TXT]
    assert _completion(services, task_id)["output"] == {"content": APP_TXT}
    rerun = _last_run(services, task_id)
    assert rerun[1:3] == [
        RESUMED,
        "Skipping step fetch because it was already completed in a previous run",
    ]
    begun = [b["message"] for t, b in all_events(services, task_id) if t == "log"]
    assert begun.count("Beginning step Fetch skeleton") == 1
    # Completed: the kept workspace is dropped.
    assert _column(services, task_id, "workspace") is None


# --- no usable archive: every step runs again ------------------------------------------------


def _hostile(tmp_path: Path, case: str) -> bytes:
    """An archive that names ``fetch`` as its work and tries to write outside."""
    buffer = io.BytesIO()
    headers = {STEPS_HEADER: json.dumps(["fetch"])}
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers
    ) as tar:

        def add(name: str, *, link: str | None = None) -> None:
            info = tarfile.TarInfo(name)
            data = b"pwned"
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

        add("src/app.txt")  # a plausible member first
        if case == "dot-dot":
            add("../escaped")
        elif case == "absolute":
            add(str(tmp_path / "outside" / "escaped"))
        else:
            add("out", link="../../outside")
            add("out/escaped")
    return buffer.getvalue()


#: The refusal each hostile archive gets, and where it tried to write (from tmp_path).
HOSTILE = {
    "dot-dot": ("climbs out of the workspace", "work/escaped"),
    "absolute": ("has an absolute name", "outside/escaped"),
    "symlink-out-then-a-file-through-it": ("leads outside the workspace", "outside/escaped"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_kept_workspace_is_refused_and_every_step_runs_again(
    services: Services,
    actions: Actions,
    client: FlaskClient,
    tmp_path: Path,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal, target = HOSTILE[case]
    (tmp_path / "outside").mkdir()
    _register(services, FETCH, read="src/app.txt")
    task_id = _create(client)
    assert wait_for_status(services, task_id) == "failed"
    with services.engine.begin() as conn:  # someone with the database's keys
        conn.execute(
            sa.text("UPDATE tasks SET workspace = :w WHERE id = :t"),
            {"w": _hostile(tmp_path, case), "t": task_id},
        )

    _retry(client, task_id)
    assert wait_for_status(services, task_id) == "completed"
    assert not (tmp_path / target).exists()
    assert list((tmp_path / "outside").iterdir()) == []
    # Every step ran again on a clean workspace: fetch wrote the file, not the archive.
    assert actions.read == [APP_TXT, APP_TXT]
    rerun = _last_run(services, task_id)
    refused = [m for m in rerun if m.startswith("Workspace of the previous run was refused")]
    assert len(refused) == 1, rerun
    assert refusal in refused[0]
    assert refused[0].endswith("; running all 2 steps again")
    assert RESUMED not in rerun
    assert "Beginning step Fetch skeleton" in rerun
    assert any(
        "kept workspace archive was refused" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def test_an_archive_of_other_steps_is_not_used(
    services: Services, actions: Actions, client: FlaskClient
) -> None:
    # An archive that holds the work of steps the state does not list as completed is an
    # older run's (the state was reset since): restoring it would mix two runs' files.
    _register(services, FETCH, read="src/app.txt")
    task_id = _create(client)
    assert wait_for_status(services, task_id) == "failed"
    buffer = io.BytesIO()
    headers = {STEPS_HEADER: json.dumps(["fetch", "elsewhere"])}
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers
    ) as tar:
        info = tarfile.TarInfo("src/app.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"stale"))
    with services.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE tasks SET workspace = :w WHERE id = :t"),
            {"w": buffer.getvalue(), "t": task_id},
        )

    _retry(client, task_id)
    assert wait_for_status(services, task_id) == "completed"
    assert _last_run(services, task_id)[1] == (
        "Workspace of the previous run does not match the saved steps; running all 2 steps again"
    )
    assert actions.read == [APP_TXT, APP_TXT]  # not "stale"


def _capped(make_settings: Callable[..., Settings], actions: Actions, max_bytes: int) -> Services:
    return _start(
        make_settings({"scaffolder": {"taskRecovery": {"workspaceMaxBytes": max_bytes}}}),
        actions,
    )


NOISE = {"id": "noise", "name": "Noise", "action": "test:noise", "input": {"bytes": 65536}}


def test_a_workspace_over_the_cap_is_not_kept_and_a_retry_runs_every_step(
    make_settings: Callable[..., Settings],
    actions: Actions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = _capped(make_settings, actions, 16 * 1024)
    try:
        client = create_app(services=services).test_client()
        _register(services, NOISE, read="small.txt")
        task_id = _create(client)
        assert wait_for_status(services, task_id) == "failed"
        assert _column(services, task_id, "workspace") is None
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            "workspace not kept for a retry" in w and "workspaceMaxBytes: 16384" in w
            for w in warnings
        ), warnings
        first = [b["message"] for t, b in all_events(services, task_id) if t == "log"]
        assert any(m.startswith("The workspace was not kept for a retry") for m in first)

        _retry(client, task_id)
        assert wait_for_status(services, task_id) == "completed"
        rerun = _last_run(services, task_id)
        assert rerun[1] == NOT_AVAILABLE
        assert RESUMED not in rerun
        assert actions.runs["noise"] == 2  # run again: its files were not kept
        assert actions.effects["noise"] == 1  # its checkpoint held
        assert actions.read == ["small", "small"]
    finally:
        services.close()


def test_a_kept_workspace_goes_when_a_later_run_is_over_the_cap(
    make_settings: Callable[..., Settings], actions: Actions
) -> None:
    # Run 1 fails small: kept. Run 2 restores it, grows past the cap and fails: what run 1
    # kept lacks run 2's work, so it goes too, and run 3 runs every step again.
    services = _capped(make_settings, actions, 16 * 1024)
    try:
        client = create_app(services=services).test_client()
        small = {**NOISE, "input": {"bytes": 1}}
        services.catalog.replace_location(
            "file:/grow.yaml",
            [
                {
                    "apiVersion": "scaffolder.backstage.io/v1beta3",
                    "kind": "Template",
                    "metadata": {"name": "resume"},
                    "spec": {
                        "type": "service",
                        "steps": [
                            small,
                            {"id": "grow", "name": "Grow", "action": "test:grow"},
                        ],
                    },
                }
            ],
        )
        task_id = _create(client)
        assert wait_for_status(services, task_id) == "failed"
        assert _column(services, task_id, "workspace") is not None

        _retry(client, task_id)
        assert wait_for_status(services, task_id) == "failed"
        assert _last_run(services, task_id)[1] == RESUMED
        assert _column(services, task_id, "workspace") is None

        _retry(client, task_id)
        assert wait_for_status(services, task_id) == "completed"
        assert _last_run(services, task_id)[1] == NOT_AVAILABLE
        assert actions.runs["noise"] == 2
        assert actions.effects["noise"] == 1
        assert actions.runs["grow"] == 3
    finally:
        services.close()

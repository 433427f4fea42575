"""What the fault tests share: test actions installed as a plugin, worker processes, templates.

The actions arrive the way third-party actions do (a distribution with a
``scaffolder.actions`` entry point, on ``PYTHONPATH``), so a real ``scaffolder worker``
process runs them:

- ``fault:effect`` appends the task id to ``runs`` every time it runs, and to ``effects``
  once per task, inside ``ctx.checkpoint`` (the side effect that must never repeat); it also
  logs the task's secret raw, base64-encoded and URL-encoded, for the redactor to catch;
- ``fault:block`` waits until the file ``gate`` exists (or the task is cancelled);
- ``fault:fill`` writes ``megabytes`` into one file of the workspace.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
import yaml
from flask.testing import FlaskClient

from scaffolder.services import Services

SCAFFOLDER_BIN = Path(sys.executable).parent / "scaffolder"
SECRET = "s3cr3t-Tok/en+with=odd&chars"
TERMINAL = ("completed", "failed", "cancelled")

_PLUGIN = """
import base64
import urllib.parse
from pathlib import Path

from scaffolder.actions import TemplateAction


def _append(path, line):
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\\n")


def create_actions():
    def effect(ctx):
        _append(ctx.input["runs"], ctx.task_id)
        ctx.checkpoint("effect", lambda: _append(ctx.input["effects"], ctx.task_id))
        secret = ctx.secrets.get("token", "")
        basic = base64.b64encode(("x-access-token:" + secret).encode()).decode()
        ctx.logger.info(
            "token " + secret
            + " b64 " + base64.b64encode(secret.encode()).decode()
            + " urlsafe " + base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=")
            + " quoted " + urllib.parse.quote(secret, safe="")
            + " plus " + urllib.parse.quote_plus(secret)
            + " header Authorization: Basic " + basic
        )

    def block(ctx):
        gate = Path(ctx.input["gate"])
        while not gate.exists() and not ctx.signal.wait(0.05):
            pass

    def fill(ctx):
        chunk = b"x" * (1024 * 1024)
        with open(ctx.resolve_path("filler.bin", input_name="path"), "wb") as out:
            for _ in range(int(ctx.input["megabytes"])):
                out.write(chunk)
                out.flush()
        ctx.output("written", int(ctx.input["megabytes"]))

    return [
        TemplateAction(id="fault:effect", description="A side effect", handler=effect),
        TemplateAction(id="fault:block", description="Waits for a file", handler=block),
        TemplateAction(id="fault:fill", description="Fills the workspace", handler=fill),
    ]
"""


def install_plugin(site: Path) -> Path:
    """Write the ``fault:*`` actions as an installed distribution under ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "fault_actions.py").write_text(textwrap.dedent(_PLUGIN))
    dist = site / "fault_actions-0.1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fault-actions\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[scaffolder.actions]\nfault = fault_actions:create_actions\n"
    )
    return site


def encoded_secrets(secret: str = SECRET) -> list[str]:
    """The secret and the encodings of it a leak would show."""
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    ]


@dataclass(kw_only=True)
class Paths:
    """The files the ``fault:*`` actions of one test write and read."""

    root: Path
    runs: Path = field(init=False)
    effects: Path = field(init=False)
    gate: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.runs = self.root / "runs"
        self.effects = self.root / "effects"
        self.gate = self.root / "gate"

    def lines(self, path: Path) -> list[str]:
        return path.read_text().split() if path.exists() else []


def steps(paths: Paths, *, block: bool = True) -> list[dict[str, Any]]:
    """effect -> block (until the gate opens) -> log: a task that can be caught mid-run."""
    out: list[dict[str, Any]] = [
        {
            "id": "effect",
            "name": "Effect",
            "action": "fault:effect",
            "input": {"runs": str(paths.runs), "effects": str(paths.effects)},
        }
    ]
    if block:
        out.append(
            {
                "id": "block",
                "name": "Block",
                "action": "fault:block",
                "input": {"gate": str(paths.gate)},
            }
        )
    out.append({"id": "done", "name": "Done", "action": "debug:log", "input": {"message": "done"}})
    return out


def register(
    services: Services,
    name: str,
    template_steps: list[dict[str, Any]],
    *,
    start_over: bool = False,
    output: dict[str, Any] | None = None,
) -> None:
    """Put a template in the catalog (``startOver`` recovery if asked)."""
    spec: dict[str, Any] = {"type": "service", "parameters": [], "steps": template_steps}
    if output is not None:
        spec["output"] = output
    if start_over:
        spec["EXPERIMENTAL_recovery"] = {"EXPERIMENTAL_strategy": "startOver"}
    services.catalog.replace_location(
        f"file:/{name}.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": name},
                "spec": spec,
            }
        ],
    )


def create(client: FlaskClient, name: str) -> str:
    """Start a task of template ``name`` with the secret ``token``."""
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={
            "templateRef": f"template:default/{name}",
            "values": {},
            "secrets": {"token": SECRET},
        },
    )
    assert res.status_code == 201, res.json
    return str(res.json["id"])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def status(services: Services, task_id: str) -> str:
    return services.broker.store.get_task(task_id).status.value


def event_types(services: Services, task_id: str) -> list[str]:
    return [e.type.value for e in services.broker.store.list_events(task_id)]


class _HasEngine(Protocol):
    @property
    def engine(self) -> sa.Engine: ...


def all_events(source: _HasEngine, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event of the task as (type, body), the ones a startOver listing hides included.

    ``source``: the `Services` or the `SqlTaskStore` a test has at hand (both have an engine).
    """
    with source.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT event_type, body FROM task_events WHERE task_id = :t ORDER BY id"),
            {"t": task_id},
        ).all()
    return [(row[0], json.loads(row[1])) for row in rows]


def assert_no_secret_stored(engine: sa.Engine) -> None:
    """No event, spec, state or secrets column holds the secret in any form.

    Called when every task has ended: their secrets column must then be empty.
    """
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT spec, secrets, state, status FROM tasks")).all()
        bodies = conn.execute(sa.text("SELECT body FROM task_events")).scalars().all()
    texts = [json.dumps(row[:3]) for row in rows] + list(bodies)
    for form in encoded_secrets():
        leaks = [text for text in texts if form in text]
        assert not leaks, f"{form!r} is stored: {leaks[:2]}"
    for row in rows:
        if row[3] in TERMINAL:
            assert row[1] is None, "a finished task kept its secrets"


@dataclass
class Worker:
    """A running ``scaffolder worker`` process."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@contextmanager
def worker_processes(
    tmp_path: Path,
    db_url: str,
    site: Path,
    names: tuple[str, ...],
    *,
    scaffolder: dict[str, Any] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[dict[str, Worker]]:
    """``scaffolder worker`` processes on ``db_url`` with the ``fault:*`` actions installed.

    Each runs until the test stops it or the block ends (SIGKILL then: the fault tests
    check the database, not how these exit).
    """
    workers: dict[str, Worker] = {}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SCAFFOLDER_TEST_DATABASE", None)
    try:
        for name in names:
            config = tmp_path / f"worker-{name}.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "backend": {
                            "database": {"connection": db_url},
                            "workingDirectory": str(tmp_path / f"work-{name}"),
                        },
                        "catalog": {"locations": []},
                        "scaffolder": {"concurrentTasksLimit": 10, **(scaffolder or {})},
                    }
                )
            )
            log = tmp_path / f"worker-{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [
                        str(SCAFFOLDER_BIN),
                        "--log-level",
                        "WARNING",
                        "worker",
                        "--config",
                        str(config),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=preexec_fn,
                )
            workers[name] = Worker(name, proc, log)
        for worker in workers.values():

            def started(w: Worker = worker) -> bool:
                return "worker running" in w.output() or w.proc.poll() is not None

            wait_until(started, 60, f"worker {worker.name} to start")
            assert worker.proc.poll() is None, worker.output()
        yield workers
    finally:
        for worker in workers.values():
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(timeout=30)

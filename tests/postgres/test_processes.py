"""Several processes on one PostgreSQL database: migrations, claims, events, cancels.

The workers here are real ``scaffolder worker`` processes; the test process plays the API
(services without a worker, the Flask test client). Latencies are measured and printed
(``pytest -s``), not asserted: the assertions are about delivery.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from scaffolder.app import create_app
from scaffolder.db.engine import MIGRATION_LOCK_KEY, create_engine
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks import broker as broker_module
from scaffolder.tasks.store import TaskFilter
from tests.conftest import per_thread, wait_for_status
from tests.postgres.cluster import PostgresServer

#: The API and worker settings of these tests point at a fresh PostgreSQL database.
ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)

SCAFFOLDER_BIN = Path(sys.executable).parent / "scaffolder"
TEMPLATE_NAME = "light"
#: One step that logs a line: a task that only has to run.
LOG_HI = [{"id": "log", "name": "Log", "action": "debug:log", "input": {"message": "hi"}}]


def _register(services: Services, steps: list[dict[str, Any]], name: str = TEMPLATE_NAME) -> None:
    services.catalog.replace_location(
        f"file:/{name}.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": name},
                "spec": {"type": "service", "parameters": [], "steps": steps},
            }
        ],
    )


def _create(client: FlaskClient, name: str = TEMPLATE_NAME) -> str:
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": f"template:default/{name}", "values": {}},
    )
    assert res.status_code == 201, res.json
    return str(res.json["id"])


@contextmanager
def _workers(
    tmp_path: Path, db_url: str, *names: str, slots: int = 10, args: Sequence[str] = ()
) -> Iterator[dict[str, int]]:
    """``scaffolder worker`` processes on ``db_url``, started together (with ``args``); each
    one's tasks log ``worker=<name>``. Yields their pids by name."""
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
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
                        "scaffolder": {
                            "concurrentTasksLimit": slots,
                            "defaultEnvironment": {"parameters": {"worker": name}},
                        },
                    }
                )
            )
            log = tmp_path / f"worker-{name}.log"
            with log.open("wb") as out:
                command = [str(SCAFFOLDER_BIN), "--log-level", "WARNING", "worker", *args]
                proc = subprocess.Popen(
                    [*command, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
                )
            procs[name] = (proc, log)
        deadline = time.monotonic() + 60
        for proc, log in procs.values():
            while b"worker running" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "worker did not start:\n" + log.read_text()
                time.sleep(0.02)
        yield {name: proc.pid for name, (proc, _) in procs.items()}
        for proc, log in procs.values():
            assert proc.poll() is None, "worker died:\n" + log.read_text()
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for _, log in procs.values():
        assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[tuple[Services, FlaskClient]]:
    services = build_services(make_settings(), with_worker=False)
    assert services.broker.listener is not None
    assert services.broker.listener.wait_connected(10)
    yield services, create_app(services=services).test_client()
    services.close()


def test_processes_starting_together_migrate_one_at_a_time(postgres: PostgresServer) -> None:
    script = (
        "import sys\n"
        "from scaffolder.db.engine import create_engine, upgrade\n"
        "upgrade(create_engine(sys.argv[1]))\n"
    )
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with postgres.database(migrated=False) as url:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(conninfo, autocommit=True) as holder:
            # Hold the migration lock until both processes queue for it: they overlap for sure.
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True
                )
                for _ in range(2)
            ]
            deadline = time.monotonic() + 60
            while holder.execute(waiting).fetchone() != (2,):
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                assert time.monotonic() < deadline
                time.sleep(0.02)
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        errors = [proc.communicate(timeout=60)[1] for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], errors
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
                tables = set(sa.inspect(conn).get_table_names())
        finally:
            engine.dispose()
    assert len(versions) == 1
    assert {"tasks", "task_events", "alembic_version"} <= tables


@ON_POSTGRES
def test_two_worker_processes_run_each_task_exactly_once(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str
) -> None:
    services, client = api
    _register(
        services,
        [
            {
                "id": "log",
                "name": "Log",
                "action": "debug:log",
                "input": {"message": "worker=${{ environment.parameters.worker }}"},
            }
        ],
    )
    count = 200
    with _workers(tmp_path, db_url, "a", "b"):
        started = time.monotonic()
        ids = [_create(client) for _ in range(count)]
        deadline = time.monotonic() + 120
        while True:
            _, done = services.broker.store.list_tasks(
                TaskFilter(status=["completed", "failed", "cancelled"])
            )
            if done == count:
                break
            assert time.monotonic() < deadline, f"only {done} of {count} tasks finished"
            time.sleep(0.05)
        elapsed = time.monotonic() - started

    per_worker: Counter[str] = Counter()
    for task_id in ids:
        assert services.broker.store.get_task(task_id).status.value == "completed"
        events = services.broker.store.list_events(task_id)
        messages = [e.body.get("message", "") for e in events]
        assert sum(e.type.value == "completion" for e in events) == 1, messages
        assert sum(m.startswith("Starting up task") for m in messages) == 1, messages
        ran_on = [m.rsplit(": worker=", 1)[1] for m in messages if ": worker=" in m]
        assert len(ran_on) == 1, messages
        per_worker[ran_on[0]] += 1
    print(f"\n{count} tasks on two worker processes in {elapsed:.2f}s: {dict(per_worker)}")
    assert sum(per_worker.values()) == count
    assert set(per_worker) == {"a", "b"}  # both really raced for them


@ON_POSTGRES
def test_a_worker_started_with_nice_runs_its_tasks_at_that_priority(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str
) -> None:
    services, client = api
    _register(services, LOG_HI)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    expected = min(base + 7, 19)
    with _workers(tmp_path, db_url, "a", args=["--nice", "7"]) as pids:
        task_id = _create(client)
        assert wait_for_status(services, task_id, 30) == "completed"
        niceness = per_thread(pids["a"], lambda tid: os.getpriority(os.PRIO_PROCESS, tid))
    # Every thread (main, claim, heartbeat, janitor, recovery, LISTEN, ...) started after the
    # option took effect, as a task's thread is.
    assert len(niceness) > 3, niceness
    assert set(niceness.values()) == {expected}, niceness


@ON_POSTGRES
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning shows only on 2+ CPUs")
def test_a_worker_started_with_cpu_runs_its_threads_on_that_cpu(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str
) -> None:
    services, client = api
    _register(services, LOG_HI)
    cpu = max(os.sched_getaffinity(0))
    with _workers(tmp_path, db_url, "a", args=["--cpu", str(cpu)]) as pids:
        task_ids = [_create(client) for _ in range(3)]
        assert [wait_for_status(services, t, 30) for t in task_ids] == ["completed"] * 3
        cpus = per_thread(pids["a"], os.sched_getaffinity)
    # Every thread (main, claim, heartbeat, the event writer's connection, LISTEN, ...)
    # started after the pin and inherited it.
    assert len(cpus) > 3, cpus
    assert all(c == {cpu} for c in cpus.values()), cpus


def _read_stream(client: FlaskClient, task_id: str) -> tuple[list[str], list[float]]:
    """Event types of the task's SSE stream, and the latency (ms) of each event written
    while the stream was open: its ``createdAt`` (taken by the writer just before its
    INSERT) to the moment the stream yielded it."""
    opened = datetime.now(UTC)
    types: list[str] = []
    latencies: list[float] = []
    # The test client reads the first chunk before it returns: the stream is open then.
    response = client.get(f"/api/scaffolder/v2/tasks/{task_id}/eventstream", buffered=False)
    for chunk in response.response:
        received = datetime.now(UTC)
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for frame in filter(None, text.split("\n\n")):
            data = json.loads(frame.split("\n", 1)[1][len("data: ") :])
            types.append(data["type"])
            created = datetime.fromisoformat(data["createdAt"].replace("Z", "+00:00"))
            if created >= opened:  # not a replay of what was there before
                latencies.append((received - created).total_seconds() * 1000)
    response.close()
    return types, latencies


@ON_POSTGRES
def test_events_and_cancels_cross_process_boundaries(
    api: tuple[Services, FlaskClient],
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the safety polls at an hour, only NOTIFY can deliver anything within the test.
    monkeypatch.setattr(broker_module, "NOTIFIED_POLL_SECONDS", 3600.0)
    monkeypatch.setattr("scaffolder.api.scaffolder.STREAM_WAIT_SECONDS", 3600.0)
    services, client = api
    ticks: list[dict[str, Any]] = []
    for i in range(10):
        wait = {"milliseconds": 50}
        ticks.append({"id": f"w{i}", "name": "Wait", "action": "debug:wait", "input": wait})
        log = {"message": f"t{i}"}
        ticks.append({"id": f"l{i}", "name": "Log", "action": "debug:log", "input": log})
    _register(services, ticks)
    _register(
        services,
        [{"id": "wait", "name": "Wait", "action": "debug:wait", "input": {"seconds": 60}}],
        name="long",
    )
    with _workers(tmp_path, db_url, "a", slots=1):
        # Events written by the worker process reach a stream open here.
        types, latencies = _read_stream(client, _create(client))
        assert types[-1] == "completion"
        assert len(types) > 40  # begin/log/finish lines of every step, then the completion
        assert len(latencies) > 30

        # A cancel recorded here stops the step running there.
        task_id = _create(client, "long")
        deadline = time.monotonic() + 30
        while services.broker.store.get_task(task_id).status.value != "processing":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        assert client.post(f"/api/scaffolder/v2/tasks/{task_id}/cancel").status_code == 200
        assert wait_for_status(services, task_id, timeout=30) == "cancelled"
        cancel_seconds = time.monotonic() - started

    latencies.sort()
    print(
        f"\ncross-process event latency over {len(latencies)} events (ms): "
        f"median {statistics.median(latencies):.1f}, "
        f"p90 {latencies[int(len(latencies) * 0.9)]:.1f}, max {latencies[-1]:.1f}; "
        f"cancel to status cancelled: {cancel_seconds * 1000:.0f} ms"
    )

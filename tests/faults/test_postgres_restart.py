"""PostgreSQL restarted while two worker processes run tasks.

The cluster is the test's own (the session's is shared with other tests). Tasks wait at a
gate while the server restarts: their worker processes lose every connection, the LISTEN
ones included. Afterwards every task completes, none runs its side effect twice, new tasks
are accepted and claimed, and events reach the API through its re-established LISTEN.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import build_services
from scaffolder.settings import Settings
from scaffolder.tasks import broker as broker_module
from scaffolder.tasks.model import EventType
from scaffolder.tasks.store import TaskFilter
from tests.faults.harness import (
    Paths,
    assert_no_secret_stored,
    create,
    register,
    steps,
    wait_until,
    worker_processes,
)
from tests.postgres.cluster import LocalCluster, PostgresServer, PostgresUnavailable

BEFORE = 20  # running (gated) when the server restarts: both workers' slots
QUEUED = 10  # open, waiting for a slot, when it restarts
AFTER = 10  # created once it is back


@pytest.fixture
def own_cluster() -> Iterator[tuple[LocalCluster, str]]:
    try:
        cluster = LocalCluster()
    except PostgresUnavailable as exc:
        pytest.skip(f"needs the PostgreSQL binaries to restart a server: {exc}")
    try:
        server = PostgresServer(cluster.start())
        with server.database() as url:
            yield cluster, url
        server.close()
    finally:
        cluster.stop()


def test_tasks_survive_a_postgres_restart(
    own_cluster: tuple[LocalCluster, str],
    tmp_path: Path,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, url = own_cluster
    # Here only NOTIFY can wake an event reader within the test, so a LISTEN that did not
    # come back after the restart fails it.
    monkeypatch.setattr(broker_module, "NOTIFIED_POLL_SECONDS", 3600.0)
    settings = Settings.from_config(
        {
            "backend": {
                "database": {"connection": url},
                "workingDirectory": str(tmp_path / "api-work"),
                "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
            },
            "scaffolder": {"concurrentTasksLimit": 0},
        }
    )
    services = build_services(settings, with_worker=False)
    client: FlaskClient = create_app(services=services).test_client()
    listener = services.broker.listener
    assert listener is not None
    assert listener.wait_connected(10)
    paths = Paths(root=tmp_path / "effects")
    register(services, "gated", steps(paths), start_over=True)
    # A restart takes a second or two; heartbeats stop meanwhile, and must not look stale.
    config = {
        "concurrentTasksLimit": BEFORE // 2,
        "taskRecovery": {"staleTimeout": {"seconds": 20}},
    }
    try:
        with worker_processes(tmp_path, url, site, ("a", "b"), scaffolder=config) as workers:
            ids = [create(client, "gated") for _ in range(BEFORE)]
            wait_until(lambda: len(paths.lines(paths.effects)) == BEFORE, 60, "all slots busy")
            ids += [create(client, "gated") for _ in range(QUEUED)]

            cluster.restart()

            wait_until(lambda: listener.connected, 60, "the API's LISTEN to reconnect")
            ids += [create(client, "gated") for _ in range(AFTER)]
            paths.gate.touch()
            last = ids[-1]
            # Its events reach this process only by NOTIFY (the safety poll is an hour).
            deadline = time.monotonic() + 90
            after: int | None = None
            done = False
            while not done:
                assert time.monotonic() < deadline, "the last task's completion never arrived"
                for event in services.broker.wait_for_events(last, after, 30, new_only=True):
                    after = event.id if after is None else max(after, event.id)
                    done = done or event.type is EventType.COMPLETION
            wait_until(
                lambda: (
                    services.broker.store.list_tasks(TaskFilter(status=["completed"]))[1]
                    == len(ids)
                ),
                90,
                "every task to complete",
            )
            logs = {name: worker.output() for name, worker in workers.items()}

        total = BEFORE + QUEUED + AFTER
        assert sorted(paths.lines(paths.effects)) == sorted(ids)  # each side effect once
        assert len(set(paths.lines(paths.runs))) == total
        for task_id in ids:
            assert services.broker.store.get_task(task_id).status.value == "completed"
        for name, text in logs.items():
            assert "Traceback" not in text or "connection" in text, (name, text)
            assert "LISTEN connection lost" in text, (name, text)
        assert_no_secret_stored(services.engine)
    finally:
        services.close()

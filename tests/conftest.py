"""Shared fixtures: settings on a temp dir, the real services, the Flask app and client.

The database is SQLite unless a test module asks for both engines with
``pytestmark = pytest.mark.both_engines``: its tests that use `db_url` (through
`make_settings`, `settings`, `services`, `app` or `client`) then run once on SQLite and once
on a fresh PostgreSQL database (`postgres`). ``SCAFFOLDER_TEST_DATABASE=postgres`` makes
PostgreSQL the engine of all the others.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings, load_config
from tests.postgres.cluster import ENV_URL, LocalCluster, PostgresServer, PostgresUnavailable

REPO = Path(__file__).resolve().parent.parent
FIXTURE_TEMPLATES = REPO / "tests" / "fixtures" / "templates"
HELLO_VALUES = {
    "name": "svc-one",
    "description": "First service",
    "owner": "group:default/platform",
    "language": "python",
    "port": 8080,
}


ENGINES = ("sqlite", "postgres")
#: ``SCAFFOLDER_TEST_DATABASE=postgres`` runs every other database test on PostgreSQL too.
DEFAULT_ENGINE_ENV = "SCAFFOLDER_TEST_DATABASE"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_engines: run the module's database tests on SQLite and PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("db_url", ENGINES, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server to create test databases on.

    ``SCAFFOLDER_TEST_POSTGRES_URL`` if set, else a throwaway cluster from the Debian
    binaries. Without binaries the test fails in CI (``CI=true``) and is skipped elsewhere.
    """
    url = os.environ.get(ENV_URL)
    if url:
        server = PostgresServer(url)
        yield server
        server.close()
        return
    try:
        cluster = LocalCluster()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        server = PostgresServer(cluster.start())
        yield server
        server.close()
    finally:
        cluster.stop()


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's database URL: SQLite in ``tmp_path``, or a fresh PostgreSQL database."""
    engine = getattr(request, "param", os.environ.get(DEFAULT_ENGINE_ENV, "sqlite"))
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.database() as url:
        yield url


@pytest.fixture
def make_settings(tmp_path: Path, db_url: str) -> Callable[..., Settings]:
    """Settings on a temp database and working directory, with extra config merged in.

    ``integrations.git`` has the local git host ``localhost`` on ``tmp_path / "git"``, so
    ``localhost?owner=o&repo=r`` publishes to ``tmp_path / "git/o/r.git"``.
    """

    def make(extra: dict[str, Any] | None = None, **backend: Any) -> Settings:
        config: dict[str, Any] = {
            "backend": {
                "database": {"connection": db_url},
                "workingDirectory": str(tmp_path / "work"),
                "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
                **backend,
            },
            "catalog": {
                "locations": [{"type": "file", "target": f"{FIXTURE_TEMPLATES}/*/template.yaml"}]
            },
            # The local git host of `make serve`, on a temp directory of bare repositories.
            "integrations": {
                "git": [{"host": "localhost", "baseUrl": (tmp_path / "git").as_uri()}]
            },
        }
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        path = tmp_path / f"app-config-{len(list(tmp_path.glob('app-config-*')))}.yaml"
        import yaml

        path.write_text(yaml.safe_dump(config))
        return Settings.from_config(load_config([path], environ={}))

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services=services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


_T = TypeVar("_T")


def per_thread(pid: int, read: Callable[[int], _T]) -> dict[int, _T]:
    """``read(thread id)`` for each thread of a live process (Linux: a thread id is a target
    of ``getpriority`` and ``sched_getaffinity`` of its own); a thread that ends meanwhile is
    left out."""
    found = {}
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        with contextlib.suppress(ProcessLookupError):
            found[tid] = read(tid)
    return found


def wait_for_status(services: Services, task_id: str, timeout: float = 15.0) -> str:
    """Poll the store until the task is finished; return its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = services.broker.store.get_task(task_id).status.value
        if status not in ("open", "processing"):
            return status
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} did not finish in {timeout}s")

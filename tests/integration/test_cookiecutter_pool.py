"""The cookiecutter pool under load and failure, and fetch:cookiecutter through the real API."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scaffolder.errors import ScaffolderError
from scaffolder.integrations.cookiecutter import CookiecutterPool, RenderJob
from scaffolder.services import Services
from tests.conftest import FIXTURE_TEMPLATES, wait_for_status

SKELETON = FIXTURE_TEMPLATES / "cookie-template" / "skeleton"
SCAFFOLDER = "/api/scaffolder"


@pytest.fixture
def pool() -> Iterator[CookiecutterPool]:
    pool = CookiecutterPool()
    yield pool
    pool.close()


def job(work: Path, name: str) -> RenderJob:
    (work / "out").mkdir(parents=True)
    return RenderJob(
        template_dir=SKELETON,
        output_dir=work / "out",
        work_dir=work,
        values={"name": name, "description": f"about {name}"},
        trusted=False,
        source=str(SKELETON),
    )


def server_pid(pool: CookiecutterPool) -> int:
    server = pool._server
    assert server is not None
    return server.process.pid


def test_renders_run_at_once_each_in_its_own_child(pool: CookiecutterPool, tmp_path: Path) -> None:
    results: dict[int, str] = {}

    def render(i: int) -> None:
        result = pool.render(job(tmp_path / str(i), f"svc_{i}"))
        results[i] = (result.project_dir / "README.md").read_text()

    threads = [threading.Thread(target=render, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert results == {i: f"# svc_{i}\n\nabout svc_{i}\n" for i in range(8)}


def test_the_fork_server_is_started_once_and_restarted_when_it_dies(
    pool: CookiecutterPool, tmp_path: Path
) -> None:
    pool.render(job(tmp_path / "a", "a"))
    first = server_pid(pool)
    pool.render(job(tmp_path / "b", "b"))
    assert server_pid(pool) == first

    os.kill(first, signal.SIGKILL)
    result = pool.render(job(tmp_path / "c", "c"))

    assert (result.project_dir / "README.md").read_text() == "# c\n\nabout c\n"
    assert server_pid(pool) != first


def test_close_stops_the_fork_server(tmp_path: Path) -> None:
    pool = CookiecutterPool()
    pool.render(job(tmp_path / "a", "a"))
    server = pool._server
    assert server is not None

    pool.close()

    assert server.process.poll() is not None
    with pytest.raises(ScaffolderError, match="The cookiecutter pool is closed"):
        pool.render(job(tmp_path / "b", "b"))


def test_a_cookiecutter_task_over_http(client: FlaskClient, services: Services) -> None:
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={
            "templateRef": "template:default/cookie-template",
            "values": {"name": "cookie_svc", "description": "{{ 7*7 }}"},
        },
    )
    task_id = res.json["id"]

    assert wait_for_status(services, task_id, timeout=30) == "completed"
    events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    messages = [e["body"]["message"] for e in events]
    assert messages[2] == "\x1b[32minfo\x1b[39m: Fetching and then templating using cookiecutter"
    listing = next(m for m in messages if "Workspace:" in m)
    assert " - README.md:\n\n  # cookie_svc\n\n{{ 7*7 }}\n" in listing
    assert messages[-1] == "Run completed with status: completed"

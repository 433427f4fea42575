"""The cookiecutter pool under load and failure, and fetch:cookiecutter through the real API."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scaffolder.errors import InputError, ScaffolderError
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


@pytest.mark.parametrize("spares", [0, 1])
def test_the_fork_server_is_started_once_and_restarted_when_it_dies(
    tmp_path: Path, spares: int
) -> None:
    pool = CookiecutterPool(spares=spares)
    try:
        pool.render(job(tmp_path / "a", "a"))
        first = server_pid(pool)
        pool.render(job(tmp_path / "b", "b"))
        assert server_pid(pool) == first

        os.kill(first, signal.SIGKILL)
        result = pool.render(job(tmp_path / "c", "c"))
        if spares:
            wait_for_spare(pool)  # forked by a new server

        assert (result.project_dir / "README.md").read_text() == "# c\n\nabout c\n"
        assert server_pid(pool) != first
    finally:
        pool.close()


def wait_for_spare(pool: CookiecutterPool) -> int:
    deadline = time.monotonic() + 30
    while not pool._spares and time.monotonic() < deadline:
        time.sleep(0.01)
    (spare,) = pool._spares
    return spare.pid


def test_a_waiting_spare_takes_the_next_job_and_is_replaced(
    pool: CookiecutterPool, tmp_path: Path
) -> None:
    pool.start()
    first = wait_for_spare(pool)

    pool.render(job(tmp_path / "a", "a"))

    second = wait_for_spare(pool)
    assert second != first
    assert gone(first)


def test_a_dead_spare_is_skipped(pool: CookiecutterPool, tmp_path: Path) -> None:
    pool.start()
    os.kill(wait_for_spare(pool), signal.SIGKILL)

    result = pool.render(job(tmp_path / "a", "a"))

    assert (result.project_dir / "README.md").read_text() == "# a\n\nabout a\n"


def test_without_spares_each_render_forks_on_demand(tmp_path: Path) -> None:
    pool = CookiecutterPool.from_config({"scaffolder": {"cookiecutter": {"spares": 0}}})
    try:
        for name in ("a", "b"):
            result = pool.render(job(tmp_path / name, name))
            assert (result.project_dir / "README.md").read_text().startswith(f"# {name}\n")
        time.sleep(0.2)
        assert pool._spares == []
    finally:
        pool.close()


@pytest.mark.parametrize("spares", ["2", -1, 17, True])
def test_spares_are_checked(spares: object) -> None:
    with pytest.raises(InputError, match=r"scaffolder\.cookiecutter\.spares must be an integer"):
        CookiecutterPool.from_config({"scaffolder": {"cookiecutter": {"spares": spares}}})


def test_close_stops_the_fork_server_and_the_spares(tmp_path: Path) -> None:
    pool = CookiecutterPool()
    pool.render(job(tmp_path / "a", "a"))
    server = pool._server
    assert server is not None
    spare = wait_for_spare(pool)

    pool.close()

    assert server.process.poll() is not None
    assert gone(spare)
    with pytest.raises(ScaffolderError, match="The cookiecutter pool is closed"):
        pool.render(job(tmp_path / "b", "b"))


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts: the fork server reaps its children)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


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

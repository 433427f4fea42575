"""An API process without workers and a separate worker process share one database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scaffolder.app import create_app
from scaffolder.services import build_services
from scaffolder.settings import Settings
from tests.conftest import HELLO_VALUES, wait_for_status

pytestmark = pytest.mark.both_engines


def test_separate_worker_runs_tasks_from_the_api(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    api_services = build_services(settings, with_worker=False)
    worker_services = build_services(settings, with_worker=True)
    try:
        assert api_services.worker is None
        client = create_app(services=api_services).test_client()
        res = client.post(
            "/api/scaffolder/v2/tasks",
            json={"templateRef": "template:default/hello-template", "values": HELLO_VALUES},
        )
        task_id = res.json["id"]
        # Two processes do not share wake-ups: the worker finds the task by polling.
        assert wait_for_status(api_services, task_id, timeout=10) == "completed"
        events = client.get(f"/api/scaffolder/v2/tasks/{task_id}/events").json
        assert events[-1]["body"]["message"] == "Run completed with status: completed"
    finally:
        worker_services.close()
        api_services.close()


def test_concurrency_limit_is_respected(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings({"scaffolder": {"concurrentTasksLimit": 1}})
    services = build_services(settings)
    try:
        client = create_app(services=services).test_client()
        ids = [
            client.post(
                "/api/scaffolder/v2/tasks",
                json={"templateRef": "template:default/slow-template", "values": {"seconds": 30}},
            ).json["id"]
            for _ in range(2)
        ]
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not services.worker.running:  # type: ignore[union-attr]
            time.sleep(0.01)
        statuses = sorted(services.broker.store.get_task(i).status.value for i in ids)
        assert statuses == ["open", "processing"]
        for task_id in ids:
            client.post(f"/api/scaffolder/v2/tasks/{task_id}/cancel")
        assert {wait_for_status(services, i) for i in ids} == {"cancelled"}
    finally:
        services.close()

"""GET /metrics: tasks by status and queue depth from the store, runner and SSE instruments."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from scaffolder.app import create_app
from scaffolder.errors import InputError
from scaffolder.metrics import Metrics, serve_metrics
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from tests.conftest import HELLO_VALUES, wait_for_status

pytestmark = pytest.mark.both_engines

SCAFFOLDER = "/api/scaffolder"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    res = client.get("/metrics")
    assert res.status_code == 200
    assert res.content_type.startswith("text/plain; version=0.0.4")
    return _samples(res.get_data(as_text=True))


def _create(client: FlaskClient, template: str, values: dict[str, object]) -> str:
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={"templateRef": f"template:default/{template}", "values": values},
    )
    assert res.status_code == 201, res.json
    return str(res.json["id"])


def test_task_counts_step_durations_and_claim_latency(
    client: FlaskClient, services: Services
) -> None:
    before = _scrape(client)
    assert before[("scaffolder_tasks", (("status", "open"),))] == 0
    assert before[("scaffolder_task_queue_depth", ())] == 0
    assert ("process_resident_memory_bytes", ()) in before

    task_id = _create(client, "hello-template", HELLO_VALUES)
    assert wait_for_status(services, task_id) == "completed"
    samples = _scrape(client)
    assert samples[("scaffolder_tasks", (("status", "completed"),))] == 1
    assert samples[("scaffolder_tasks", (("status", "failed"),))] == 0
    steps = (("action", "debug:log"), ("status", "completed"))
    assert samples[("scaffolder_step_duration_seconds_count", steps)] == 2
    fetch = (("action", "fetch:template"), ("status", "completed"))
    assert samples[("scaffolder_step_duration_seconds_count", fetch)] == 1
    assert samples[("scaffolder_step_duration_seconds_sum", fetch)] > 0
    assert samples[("scaffolder_task_claim_latency_seconds_count", ())] == 1

    # A retry is not a first claim. Its steps all completed before, so they are skipped
    # (step-state resume, recovery being on) and not timed again.
    assert client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={}).status_code == 201
    assert wait_for_status(services, task_id) == "completed"
    samples = _scrape(client)
    assert samples[("scaffolder_task_claim_latency_seconds_count", ())] == 1
    assert samples[("scaffolder_step_duration_seconds_count", steps)] == 2


def test_cancelled_steps_are_labelled(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, "slow-template", {"seconds": 30})
    for _ in range(200):
        events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
        if any(e["body"].get("stepId") == "wait" for e in events):
            break
    client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel")
    assert wait_for_status(services, task_id) == "cancelled"
    samples = _scrape(client)
    cancelled = (("action", "debug:wait"), ("status", "cancelled"))
    assert samples[("scaffolder_step_duration_seconds_count", cancelled)] == 1
    assert samples[("scaffolder_tasks", (("status", "cancelled"),))] == 1


def test_queue_depth_counts_open_tasks(make_settings: Callable[..., Settings]) -> None:
    services = build_services(make_settings({"scaffolder": {"concurrentTasksLimit": 0}}))
    try:
        client = create_app(services=services).test_client()
        for _ in range(3):
            _create(client, "slow-template", {"seconds": 0})
        samples = _scrape(client)
        assert samples[("scaffolder_task_queue_depth", ())] == 3
        assert samples[("scaffolder_tasks", (("status", "open"),))] == 3
    finally:
        services.close()


def test_event_stream_clients_gauge(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, "slow-template", {"seconds": 30})
    stream = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/eventstream")
    assert stream.status_code == 200
    first = next(iter(stream.response))
    assert b"event: log" in (first if isinstance(first, bytes) else first.encode())
    assert _scrape(client)[("scaffolder_event_stream_clients", ())] == 1
    stream.close()
    assert _scrape(client)[("scaffolder_event_stream_clients", ())] == 0
    client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel")
    wait_for_status(services, task_id)


def test_metrics_need_no_auth_unless_a_token_is_configured(
    make_settings: Callable[..., Settings],
) -> None:
    open_ = build_services(make_settings(auth={}))
    try:
        client = create_app(services=open_).test_client()
        assert client.get(f"{SCAFFOLDER}/v2/tasks").status_code == 401
        assert client.get("/metrics").status_code == 200
    finally:
        open_.close()
    guarded = build_services(make_settings(metrics={"token": "metrics-token-123"}))
    try:
        client = create_app(services=guarded).test_client()
        res = client.get("/metrics")
        assert res.status_code == 401
        assert res.json["error"]["name"] == "AuthenticationError"
        bad = client.get("/metrics", headers={"Authorization": "Bearer wrong-token-123"})
        assert bad.status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-123"})
        assert ok.status_code == 200
        assert b"scaffolder_tasks" in ok.data
    finally:
        guarded.close()


def test_openmetrics_is_served_when_asked_for(client: FlaskClient) -> None:
    res = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert res.content_type.startswith("application/openmetrics-text")
    assert res.get_data(as_text=True).endswith("# EOF\n")


def test_worker_metrics_server(services: Services) -> None:
    server = serve_metrics(services.metrics, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.bind_addr[1]}"
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as res:
            assert b"scaffolder_task_queue_depth" in res.read()
        with urllib.request.urlopen(f"{url}/.backstage/health/v1/readiness", timeout=5) as res:
            assert res.read() == b'{"status":"ok"}'
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/other", timeout=5)
        assert err.value.code == 404
        err.value.close()
    finally:
        server.stop()


def test_bad_metrics_token_is_refused() -> None:
    with pytest.raises(InputError):
        Metrics.from_config({"backend": {"metrics": {"token": "short"}}}, store=None)  # type: ignore[arg-type]

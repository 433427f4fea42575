"""Tasks over HTTP: create, read, list, events, event stream, cancel, retry, dry run."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from flask.testing import FlaskClient

from scaffolder.db.tables import task_events, tasks
from scaffolder.services import Services
from tests.conftest import FIXTURE_TEMPLATES, HELLO_VALUES, wait_for_status

pytestmark = pytest.mark.both_engines

SCAFFOLDER = "/api/scaffolder"


def _create(client: FlaskClient, template: str = "hello-template", **values: Any) -> str:
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={"templateRef": f"template:default/{template}", "values": values},
    )
    assert res.status_code == 201, res.json
    return str(res.json["id"])


def _count_tasks(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(tasks)).scalar_one())


def test_create_runs_to_completion_with_upstream_messages(
    client: FlaskClient, services: Services
) -> None:
    task_id = _create(client, **HELLO_VALUES)
    assert wait_for_status(services, task_id) == "completed"
    task = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}").json
    assert list(task) == ["id", "spec", "status", "createdAt", "lastHeartbeatAt"]
    assert task["status"] == "completed"
    assert task["spec"]["templateInfo"]["entityRef"] == "template:default/hello-template"
    assert task["spec"]["templateInfo"]["baseUrl"] == (
        f"file://{FIXTURE_TEMPLATES}/hello-template/template.yaml"
    )
    assert task["spec"]["user"] == {}
    assert task["createdAt"].endswith("Z")

    events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    messages = [e["body"]["message"] for e in events]
    assert messages[0] == "Starting up task with 4 steps"
    assert messages[1] == "Beginning step Log start"
    assert (
        "\x1b[32minfo\x1b[39m: Scaffolding svc-one (python) for group:default/platform" in messages
    )
    assert "Finished step Write catalog-info.yaml" in messages
    completion = events[-1]
    assert completion["type"] == "completion"
    assert completion["body"] == {
        "message": "Run completed with status: completed",
        "output": {
            "text": [{"title": "Done", "content": "Created svc-one"}],
            "links": [{"title": "Fake repo", "url": "http://127.0.0.1/repos/svc-one"}],
        },
    }
    assert list(completion) == ["id", "isTaskRecoverable", "taskId", "body", "type", "createdAt"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    # The workspace is gone and no secret is left in the row.
    assert not (services.settings.working_directory / task_id).exists()


def test_events_after_includes_completion_always(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, **HELLO_VALUES)
    wait_for_status(services, task_id)
    events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    last = events[-1]["id"]
    again = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events?after={last}").json
    assert [e["type"] for e in again] == ["completion"]
    tail = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events?after={events[5]['id']}").json
    assert [e["id"] for e in tail] == [e["id"] for e in events[6:]]


def test_event_ids_are_one_global_sequence(client: FlaskClient, services: Services) -> None:
    first = _create(client, **HELLO_VALUES)
    wait_for_status(services, first)
    second = _create(client, **HELLO_VALUES)
    wait_for_status(services, second)
    a = client.get(f"{SCAFFOLDER}/v2/tasks/{first}/events").json
    b = client.get(f"{SCAFFOLDER}/v2/tasks/{second}/events").json
    assert b[0]["id"] > a[-1]["id"]


def test_eventstream_frames_and_closes_after_completion(
    client: FlaskClient, services: Services
) -> None:
    task_id = _create(client, **HELLO_VALUES)
    res = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/eventstream")
    assert res.status_code == 200
    assert res.headers["Content-Type"] == "text/event-stream"
    assert res.headers["Cache-Control"] == "no-cache"
    text = res.get_data(as_text=True)
    frames = [f for f in text.split("\n\n") if f]
    for frame in frames:
        lines = frame.split("\n")
        assert lines[0].startswith("event: ")
        assert lines[1].startswith("data: ")
        assert len(lines) == 2
    last = frames[-1].split("\n")
    assert last[0] == "event: completion"
    data = json.loads(last[1][len("data: ") :])
    assert data["isTaskRecoverable"] is False
    assert data["body"]["message"] == "Run completed with status: completed"


def test_eventstream_after_replays_rest(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, **HELLO_VALUES)
    wait_for_status(services, task_id)
    events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    text = client.get(
        f"{SCAFFOLDER}/v2/tasks/{task_id}/eventstream?after={events[-3]['id']}"
    ).get_data(as_text=True)
    assert text.count("event: ") == 2
    assert text.endswith("\n\n")


def test_eventstream_unknown_task_is_json_404(client: FlaskClient) -> None:
    res = client.get(f"{SCAFFOLDER}/v2/tasks/nope/eventstream")
    assert res.status_code == 404
    assert res.json["error"]["message"] == "No task with id 'nope' found"


def test_get_and_events_unknown_task(client: FlaskClient) -> None:
    for path in ("/v2/tasks/nope", "/v2/tasks/nope/events"):
        res = client.get(SCAFFOLDER + path)
        assert res.status_code == 404
        assert res.json == {
            "error": {"name": "NotFoundError", "message": "No task with id 'nope' found"},
            "request": {"method": "GET", "url": path},
            "response": {"statusCode": 404},
        }


def test_list_tasks_filters_order_pagination(client: FlaskClient, services: Services) -> None:
    ids = [_create(client, **HELLO_VALUES) for _ in range(3)]
    for task_id in ids:
        wait_for_status(services, task_id)
    body = client.get(f"{SCAFFOLDER}/v2/tasks").json
    assert body["totalTasks"] == 3
    assert set(body["tasks"][0]) == {"id", "spec", "status", "createdAt", "lastHeartbeatAt"}
    page = client.get(f"{SCAFFOLDER}/v2/tasks?limit=1&offset=1&order=asc:created_at").json
    assert page["totalTasks"] == 3
    assert [t["id"] for t in page["tasks"]] == [ids[1]]
    none = client.get(f"{SCAFFOLDER}/v2/tasks?status=failed&status=open").json
    assert none == {"tasks": [], "totalTasks": 0}
    mine = client.get(f"{SCAFFOLDER}/v2/tasks?createdBy=user%3Adefault%2Fguest").json
    assert mine["totalTasks"] == 0


def test_list_tasks_bad_order_and_params(client: FlaskClient) -> None:
    res = client.get(f"{SCAFFOLDER}/v2/tasks?order=sideways:created_at")
    assert res.status_code == 400
    assert res.json["error"]["message"] == (
        'Invalid order parameter "sideways:created_at", expected "<asc or desc>:<field name>"'
    )
    assert res.json["request"]["url"] == "/v2/tasks?order=sideways:created_at"
    res = client.get(f"{SCAFFOLDER}/v2/tasks?order=asc:spec")
    assert res.json["error"]["message"] == 'Invalid order field "spec"'
    res = client.get(f"{SCAFFOLDER}/v2/tasks?limit=abc")
    assert res.json["error"]["message"] == "request/query/limit must be integer"
    res = client.get(f"{SCAFFOLDER}/v2/tasks?foo=1")
    assert res.json["error"]["message"] == "Unknown query parameter 'foo'"


def test_bad_create_requests_write_nothing(client: FlaskClient, services: Services) -> None:
    cases: list[tuple[Any, int, str]] = [
        ({"values": {}}, 400, "request/body must have required property 'templateRef'"),
        (
            {"templateRef": "template:default/hello-template"},
            400,
            "request/body must have required property 'values'",
        ),
        (
            {"templateRef": "component:default/x", "values": {}},
            400,
            "Invalid kind, only 'Template' kind is supported",
        ),
        (
            {"templateRef": "template:default/missing", "values": {}},
            404,
            "Template template:default/missing not found",
        ),
        (
            {"templateRef": "hello-template", "values": {}, "secrets": {"a": 1}},
            400,
            "request/body/secrets/a must be string",
        ),
    ]
    for body, status, message in cases:
        res = client.post(f"{SCAFFOLDER}/v2/tasks", json=body)
        assert res.status_code == status, body
        assert res.json["error"]["message"] == message
        assert res.json["request"] == {"method": "POST", "url": "/v2/tasks"}
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        data='{"templateRef": "template:default/hello-template", "values": {,}}',
        content_type="application/json",
    )
    assert res.status_code == 400
    assert res.json["error"]["message"] == "Expected property name or '}' in JSON at position 62"
    assert _count_tasks(services) == 0


def test_values_failing_schema_give_errors_body(client: FlaskClient, services: Services) -> None:
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={
            "templateRef": "template:default/hello-template",
            "values": {"name": "Bad Name!", "owner": "x", "port": 99999, "language": "cobol"},
        },
    )
    assert res.status_code == 400
    assert res.json == {
        "errors": [
            {
                "path": ["name"],
                "property": "instance.name",
                "message": 'does not match pattern "^[a-z][a-z0-9-]{1,30}$"',
                "schema": {
                    "title": "Name",
                    "type": "string",
                    "description": "Unique name of the service",
                    "pattern": "^[a-z][a-z0-9-]{1,30}$",
                },
                "instance": "Bad Name!",
                "name": "pattern",
                "argument": "^[a-z][a-z0-9-]{1,30}$",
                "stack": 'instance.name does not match pattern "^[a-z][a-z0-9-]{1,30}$"',
            }
        ]
    }
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={
            "templateRef": "template:default/hello-template",
            "values": {"name": "ok-name", "port": "x", "language": "cobol"},
        },
    )
    assert [e["stack"] for e in res.json["errors"]] == [
        "instance.language is not one of enum values: python,node,go",
        "instance.port is not of a type(s) integer",
    ]
    assert _count_tasks(services) == 0


def test_defaults_are_applied_on_the_server(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, name="minimal")
    assert wait_for_status(services, task_id) == "completed"
    params = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}").json["spec"]["parameters"]
    assert params == {
        "name": "minimal",
        "description": "A hello service",
        "owner": "group:default/platform",
        "language": "python",
        "port": 8080,
    }


def test_cancel_running_task_ends_cancelled_fast(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, "slow-template", seconds=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
        if any(e["body"].get("stepId") == "wait" for e in events):
            break
        time.sleep(0.01)
    started = time.monotonic()
    res = client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel")
    assert res.status_code == 200
    assert res.json == {"status": "cancelled"}
    assert wait_for_status(services, task_id, timeout=5) == "cancelled"
    assert time.monotonic() - started < 5
    events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    types = [e["type"] for e in events]
    assert "cancelled" in types
    cancelled = next(e for e in events if e["type"] == "cancelled")
    assert cancelled["body"] == {
        "message": "Step wait has been cancelled.",
        "stepId": "wait",
        "status": "cancelled",
    }
    assert events[-1]["body"]["message"] == "Run completed with status: cancelled"
    assert "Skipping step after because a previous step failed" in [
        e["body"]["message"] for e in events
    ]


def test_cancel_unknown_is_404_and_completed_is_200(
    client: FlaskClient, services: Services
) -> None:
    assert client.post(f"{SCAFFOLDER}/v2/tasks/nope/cancel").status_code == 404
    task_id = _create(client, **HELLO_VALUES)
    wait_for_status(services, task_id)
    assert client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel").json == {"status": "cancelled"}
    assert client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}").json["status"] == "completed"


def test_retry_reruns_and_conflicts_while_running(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, "slow-template", seconds=30)
    res = client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={})
    assert res.status_code == 409
    assert res.json["error"] == {
        "name": "ConflictError",
        "message": f"Task with taskId {task_id} cannot be retried",
    }
    client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel")
    wait_for_status(services, task_id)
    res = client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={})
    assert res.status_code == 201
    assert res.json == {"id": task_id}
    events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    assert "recovered" in [e["type"] for e in events]
    client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel")
    assert wait_for_status(services, task_id) == "cancelled"
    assert client.post(f"{SCAFFOLDER}/v2/tasks/nope/retry", json={}).status_code == 404


def test_failing_step_fails_task_with_error(client: FlaskClient, services: Services) -> None:
    services.catalog.replace_location(
        "file:/failing.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": "failing"},
                "spec": {
                    "type": "service",
                    "steps": [
                        {"id": "bad", "action": "debug:log", "input": {"message": 42}},
                        {"id": "next", "action": "debug:log", "input": {"message": "x"}},
                        {
                            "id": "cleanup",
                            "if": "${{ failure() }}",
                            "action": "debug:log",
                            "input": {"message": "cleaning up"},
                        },
                    ],
                },
            }
        ],
    )
    task_id = _create(client, "failing")
    assert wait_for_status(services, task_id) == "failed"
    events = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json
    bodies = [e["body"] for e in events]
    assert {
        "message": "InputError: Invalid input passed to action debug:log, "
        "instance.message is not of a type(s) string",
        "stepId": "bad",
        "status": "failed",
    } in bodies
    assert {
        "message": "Skipping step next because a previous step failed",
        "stepId": "next",
        "status": "skipped",
    } in bodies
    assert {
        "message": "Finished step debug:log",
        "stepId": "cleanup",
        "status": "completed",
    } in bodies
    assert bodies[-1] == {
        "message": "Run completed with status: failed",
        "error": {
            "name": "InputError",
            "message": "Invalid input passed to action debug:log, "
            "instance.message is not of a type(s) string",
        },
    }


def test_secrets_never_leave_the_task(client: FlaskClient, services: Services) -> None:
    services.catalog.replace_location(
        "file:/secret.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": "secretive"},
                "spec": {
                    "type": "service",
                    "parameters": [{"properties": {"name": {"type": "string"}}}],
                    "steps": [
                        {
                            "id": "log",
                            "action": "debug:log",
                            "input": {
                                "message": "token is ${{ secrets.TOKEN }} for ${{ parameters.name }}"
                            },
                        },
                    ],
                    "output": {"name": "${{ parameters.name }}", "leak": "${{ secrets.TOKEN }}"},
                },
            }
        ],
    )
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={
            "templateRef": "template:default/secretive",
            "values": {"name": "${{ secrets.TOKEN }}"},
            "secrets": {"TOKEN": "s3cr3t-value"},
        },
    )
    task_id = res.json["id"]
    assert wait_for_status(services, task_id) == "completed"
    everything = json.dumps(client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events").json)
    everything += json.dumps(client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}").json)
    assert "s3cr3t-value" not in everything
    assert "token is *** for ${{ secrets.TOKEN }}" in everything  # a value is data, not template
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(tasks.c.secrets).where(tasks.c.id == task_id)).one()
        bodies = [b for (b,) in conn.execute(sa.select(task_events.c.body))]
    assert row.secrets is None
    assert not any("s3cr3t-value" in b for b in bodies)


def test_dry_run_returns_log_files_and_output(client: FlaskClient) -> None:
    root = FIXTURE_TEMPLATES / "hello-template"
    template = yaml.safe_load((root / "template.yaml").read_text())
    contents = [
        {
            "path": p.relative_to(root).as_posix(),
            "base64Content": base64.b64encode(p.read_bytes()).decode(),
        }
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]
    res = client.post(
        f"{SCAFFOLDER}/v2/dry-run",
        json={"template": template, "values": HELLO_VALUES, "directoryContents": contents},
    )
    assert res.status_code == 200, res.json
    body = res.json
    assert body["log"][0] == {"body": {"message": "Starting up task with 5 steps"}}
    assert body["log"][1] == {
        "body": {
            "stepId": "log-start",
            "status": "processing",
            "message": "Beginning step Log start",
        }
    }
    assert body["output"] == {
        "text": [{"title": "Done", "content": "Created svc-one"}],
        "links": [{"title": "Fake repo", "url": "http://127.0.0.1/repos/svc-one"}],
    }
    files = {
        f["path"]: base64.b64decode(f["base64Content"]).decode() for f in body["directoryContents"]
    }
    assert files["README.md"].startswith("# svc-one\n")
    assert "catalog-info.yaml" in files
    assert body["steps"][0]["input"]["message"].startswith("Scaffolding ${{ parameters.name }}")


def test_dry_run_bad_requests(client: FlaskClient) -> None:
    res = client.post(f"{SCAFFOLDER}/v2/dry-run", json={"template": {}})
    assert res.json["error"]["message"] == "request/body must have required property 'values'"
    res = client.post(
        f"{SCAFFOLDER}/v2/dry-run",
        json={
            "template": {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "x"},
                "spec": {},
            },
            "values": {},
            "directoryContents": [],
        },
    )
    assert res.status_code == 400
    assert res.json["error"]["message"] == "Input template is not a template"


def test_body_over_10mb_is_413(client: FlaskClient) -> None:
    big = "x" * (10 * 1024 * 1024 + 10)
    res = client.post(f"{SCAFFOLDER}/v2/tasks", data=big, content_type="application/json")
    assert res.status_code == 413
    assert res.json["error"]["name"] == "PayloadTooLargeError"


def test_long_poll_returns_as_soon_as_events_exist(client: FlaskClient, services: Services) -> None:
    task_id = _create(client, "slow-template", seconds=2)
    result: dict[str, Any] = {}

    def poll() -> None:
        result["events"] = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}/events?after=0").json

    thread = threading.Thread(target=poll)
    thread.start()
    thread.join(timeout=10)
    assert result["events"]
    client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel")
    wait_for_status(services, task_id)


def test_workspace_cleanup(services: Services, client: FlaskClient, tmp_path: Path) -> None:
    task_id = _create(client, **HELLO_VALUES)
    wait_for_status(services, task_id)
    assert list(services.settings.working_directory.iterdir()) == []

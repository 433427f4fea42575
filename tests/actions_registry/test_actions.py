"""What each ``ecs:*`` action does, invoked over HTTP as a Backstage backend invokes it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.actions_registry.conftest import (
    ACTIONS,
    STATIC_TOKEN,
    bearer,
    catalog_with_ecs_templates,
    error_of,
    services_of,
)
from tests.conftest import wait_for_status

FAILING_TEMPLATE = """\
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: failing-template
  title: Fails in its second step
spec:
  owner: group:default/platform
  type: service
  steps:
    - id: hello
      name: Hello
      action: debug:log
      input:
        message: about to fail
    - id: fetch
      name: Fetch what is not there
      action: fetch:plain
      input:
        url: ./missing
"""


def invoke(client: FlaskClient, name: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"{ACTIONS}/v1/actions/ecs:{name}/invoke", json=body, headers=bearer(STATIC_TOKEN)
    )


def output(client: FlaskClient, name: str, body: dict[str, Any]) -> dict[str, Any]:
    res = invoke(client, name, body)
    assert res.status_code == 200, res.json
    result: dict[str, Any] = res.json["output"]
    return result


@pytest.fixture
def client(registry_app: Callable[..., FlaskClient], tmp_path: Path) -> FlaskClient:
    failing = tmp_path / "failing" / "template.yaml"
    failing.parent.mkdir()
    failing.write_text(FAILING_TEMPLATE)
    catalog = catalog_with_ecs_templates()
    catalog["locations"].append({"type": "file", "target": str(failing)})
    return registry_app(
        {
            "catalog": catalog,
            "scaffolder": {"audit": {"file": str(tmp_path / "audit.jsonl")}},
        }
    )


def test_list_templates(client: FlaskClient) -> None:
    templates = output(client, "list-templates", {})["templates"]
    refs = [t["ref"] for t in templates]
    assert "template:default/hello-template" in refs
    assert "template:default/ecs-web-service" in refs
    hello = next(t for t in templates if t["name"] == "hello-template")
    assert hello["title"] == "Hello service (local skeleton)"
    assert hello["tags"] == ["reference", "local"]
    first_page = hello["parameters"][0]
    assert first_page["title"] == "Service details"
    assert first_page["schema"]["required"] == ["name", "owner"]
    assert "name" in first_page["schema"]["properties"]
    ecs = output(client, "list-templates", {"tag": "ecs"})["templates"]
    assert sorted(t["name"] for t in ecs) == [
        "ecs-grpc-service",
        "ecs-scheduled-task",
        "ecs-web-service",
        "ecs-worker-service",
    ]


def test_execute_template_without_wait_returns_the_task_id(client: FlaskClient) -> None:
    out = output(
        client,
        "execute-template",
        {"templateRef": "hello-template", "values": {"name": "svc-two"}},
    )
    assert list(out) == ["taskId"]
    services = services_of(client)
    assert wait_for_status(services, out["taskId"]) == "completed"
    task = services.broker.store.get_task(out["taskId"])
    assert task.spec["templateInfo"]["entityRef"] == "template:default/hello-template"
    # The same audit record as POST /v2/tasks, naming the action.
    audit_file = Path(services.settings.raw["scaffolder"]["audit"]["file"])
    records = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert records[-1]["meta"]["actionType"] == "create"
    assert records[-1]["meta"]["actionId"] == "ecs:execute-template"
    assert records[-1]["meta"]["taskId"] == out["taskId"]
    assert records[-1]["meta"]["templateRef"] == "template:default/hello-template"
    assert records[-1]["actor"]["actorId"] == "ci-bot"


def test_execute_template_wait_reports_a_failure(client: FlaskClient) -> None:
    out = output(
        client,
        "execute-template",
        {"templateRef": "failing-template", "values": {}, "wait": True},
    )
    assert out["status"] == "failed"
    assert out["links"] == []
    assert "missing" in out["error"]


def test_execute_template_wait_gives_up_after_its_timeout(client: FlaskClient) -> None:
    out = output(
        client,
        "execute-template",
        {
            "templateRef": "slow-template",
            "values": {"seconds": 60},
            "wait": True,
            "timeoutSeconds": 1,
        },
    )
    assert out["status"] in ("open", "processing")
    assert "links" not in out
    services_of(client).broker.cancel(out["taskId"])
    wait_for_status(services_of(client), out["taskId"])


def test_get_task_logs_after_an_event(client: FlaskClient) -> None:
    task_id = output(
        client,
        "execute-template",
        {"templateRef": "hello-template", "values": {"name": "svc-three"}, "wait": True},
    )["taskId"]
    everything = output(client, "get-task-logs", {"taskId": task_id})
    assert everything["status"] == "completed"
    events = everything["events"]
    assert events[0]["message"] == "Starting up task with 4 steps"
    assert events[-1]["type"] == "completion"
    assert everything["lastEventId"] == events[-1]["id"]
    assert any(e.get("stepId") == "log-start" for e in events)
    assert not any("\x1b[" in e.get("message", "") for e in events)
    middle = events[2]["id"]
    later = output(client, "get-task-logs", {"taskId": task_id, "after": middle})
    assert [e["id"] for e in later["events"]] == [e["id"] for e in events if e["id"] > middle]
    nothing_new = output(
        client, "get-task-logs", {"taskId": task_id, "after": everything["lastEventId"]}
    )
    assert nothing_new["events"] == []
    assert nothing_new["lastEventId"] == everything["lastEventId"]
    res = invoke(client, "get-task-logs", {"taskId": "no-such-task"})
    assert error_of(res)[:2] == (404, "NotFoundError")


def test_dry_run_template_renders_and_publishes_nothing(
    client: FlaskClient, tmp_path: Path
) -> None:
    out = output(
        client,
        "dry-run-template",
        {
            "templateRef": "template:default/ecs-web-service",
            "values": {"name": "orders-api", "owner": "group:default/payments"},
        },
    )
    assert "catalog-info.yaml" in out["files"]
    assert "infra/service.yaml" in out["files"]
    assert out["log"][0].startswith("Starting up task with")
    assert any("dry-run" in line for line in out["log"])
    assert not (tmp_path / "git" / "platform" / "orders-api.git").exists()
    assert services_of(client).catalog.get_entity("component:default/orders-api") is None
    res = invoke(
        client,
        "dry-run-template",
        {"templateRef": "ecs-web-service", "values": {"name": "Bad Name", "owner": "x"}},
    )
    status, name, message = error_of(res)
    assert (status, name) == (400, "InputError")
    assert message.startswith("Invalid values for template:default/ecs-web-service: ")


def test_create_ecs_service_publishes_registers_and_links(
    client: FlaskClient, tmp_path: Path
) -> None:
    out = output(
        client,
        "create-ecs-service",
        {
            "template": "ecs-worker-service",
            "name": "billing-worker",
            "owner": "group:default/payments",
            "description": "Bills",
        },
    )
    repo = tmp_path / "git" / "platform" / "billing-worker.git"
    assert out["status"] == "completed"
    assert out["repositoryUrl"] == repo.as_uri()
    assert out["entityRef"] == "component:default/billing-worker"
    assert {"title": "Repository", "url": repo.as_uri()} in out["links"]
    assert out["text"]
    files = subprocess.run(
        ["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "catalog-info.yaml" in files
    entity = services_of(client).catalog.get_entity("component:default/billing-worker")
    assert entity is not None
    assert entity["spec"]["owner"] == "group:default/payments"
    assert entity["metadata"]["description"] == "Bills"

    # Not idempotent, and says so: the repository exists now, and the task fails.
    res = invoke(
        client,
        "create-ecs-service",
        {"template": "ecs-worker-service", "name": "billing-worker", "owner": "group:default/x"},
    )
    status, name, message = error_of(res)
    assert (status, name) == (500, "Error")
    assert " failed: " in message
    assert "already exists" in message


def test_template_allow_lists_apply_to_actions(registry_app: Callable[..., FlaskClient]) -> None:
    client = registry_app(
        {
            "scaffolder": {
                "templateAccess": {"templates": {"template:default/hello-template": ["someone"]}}
            }
        }
    )
    res = invoke(
        client, "execute-template", {"templateRef": "hello-template", "values": {"name": "abc"}}
    )
    assert error_of(res) == (403, "NotAllowedError", "")

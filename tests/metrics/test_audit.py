"""The audit trail: JSON lines for create, cancel, retry and dry-run, never secrets."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.audit import AUDIT_LOGGER, Auditor
from scaffolder.errors import InputError
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from tests.conftest import FIXTURE_TEMPLATES, HELLO_VALUES, wait_for_status

SCAFFOLDER = "/api/scaffolder"
TOKEN = "audit-test-token-123"


@pytest.fixture
def audited(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[tuple[FlaskClient, Services, Path]]:
    path = tmp_path / "audit" / "audit.jsonl"
    settings = make_settings(
        {
            "scaffolder": {
                "audit": {"file": str(path)},
                "auditor": {"taskParameterMaxLength": 5},
            }
        },
        auth={"externalAccess": [{"type": "static", "options": {"token": TOKEN, "subject": "ci"}}]},
    )
    services = build_services(settings)
    yield create_app(services=services).test_client(), services, path
    services.close()


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _post(client: FlaskClient, url: str, body: dict[str, Any]) -> Any:
    return client.post(
        url,
        json=body,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "User-Agent": "test-agent/1",
            "X-Forwarded-For": "203.0.113.9",
        },
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )


def test_create_cancel_and_retry_are_recorded_without_secrets(
    audited: tuple[FlaskClient, Services, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client, services, path = audited
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    res = _post(
        client,
        f"{SCAFFOLDER}/v2/tasks",
        {
            "templateRef": "template:default/slow-template",
            "values": {"seconds": 30},
            "secrets": {"apiKey": "very-secret-value"},
        },
    )
    task_id = res.json["id"]
    assert _post(client, f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel", {}).status_code == 200
    assert wait_for_status(services, task_id) == "cancelled"
    assert _post(client, f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", {}).status_code == 201
    client.post(
        f"{SCAFFOLDER}/v2/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    wait_for_status(services, task_id)

    text = path.read_text()
    assert "very-secret-value" not in text
    assert TOKEN not in text
    create, cancel, retry, _ = _records(path)
    assert create["eventId"] == "task"
    assert create["plugin"] == "scaffolder"
    assert create["status"] == "succeeded"
    assert create["timestamp"].endswith("Z")
    assert create["actor"] == {
        "actorId": "ci",
        "ip": "10.1.2.3",
        "forwardedFor": "203.0.113.9",
        "userAgent": "test-agent/1",
    }
    assert create["request"] == {"method": "POST", "url": "/api/scaffolder/v2/tasks"}
    assert create["meta"] == {
        "actionType": "create",
        "templateRef": "template:default/slow-template",
        "parameters": {"seconds": 30},
        "taskId": task_id,
    }
    assert cancel["meta"] == {
        "actionType": "cancel",
        "taskId": task_id,
        "templateRef": "template:default/slow-template",
    }
    assert retry["meta"]["actionType"] == "retry"
    assert retry["meta"]["templateRef"] == "template:default/slow-template"
    # The same lines go to the scaffolder.audit logger.
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]
    assert [r["meta"]["actionType"] for r in logged] == ["create", "cancel", "retry", "cancel"]


def test_parameters_are_truncated_and_failures_recorded(
    audited: tuple[FlaskClient, Services, Path],
) -> None:
    client, _services, path = audited
    res = _post(
        client,
        f"{SCAFFOLDER}/v2/tasks",
        {"templateRef": "template:default/hello-template", "values": {"name": "Not Valid!"}},
    )
    assert res.status_code == 400
    res = _post(client, f"{SCAFFOLDER}/v2/tasks/nope/cancel", {})
    assert res.status_code == 404
    failed_create, failed_cancel = _records(path)
    assert failed_create["status"] == "failed"
    assert failed_create["meta"]["parameters"] == {"name": "Not V...<truncated>"}
    assert failed_create["error"]["name"] == "InputError"
    assert "taskId" not in failed_create["meta"]
    assert failed_cancel["status"] == "failed"
    assert failed_cancel["error"] == {
        "name": "NotFoundError",
        "message": "No task with id 'nope' found",
    }


def test_dry_run_is_recorded(audited: tuple[FlaskClient, Services, Path]) -> None:
    client, _services, path = audited
    template = yaml.safe_load((FIXTURE_TEMPLATES / "hello-template/template.yaml").read_text())
    root = FIXTURE_TEMPLATES / "hello-template"
    contents = [
        {
            "path": str(p.relative_to(root)),
            "base64Content": base64.b64encode(p.read_bytes()).decode(),
        }
        for p in root.rglob("*")
        if p.is_file()
    ]
    res = _post(
        client,
        f"{SCAFFOLDER}/v2/dry-run",
        {"template": template, "values": HELLO_VALUES, "directoryContents": contents},
    )
    assert res.status_code == 200
    (record,) = _records(path)
    assert record["meta"]["actionType"] == "dry-run"
    assert record["meta"]["templateRef"] == "template:default/hello-template"
    assert record["meta"]["parameters"]["description"] == "First...<truncated>"


def test_auditor_config() -> None:
    assert Auditor.from_config({}).truncate("x" * 300) == "x" * 256 + "...<truncated>"
    whole = Auditor.from_config({"scaffolder": {"auditor": {"taskParameterMaxLength": -1}}})
    assert whole.truncate({"a": ["x" * 300]}) == {"a": ["x" * 300]}
    with pytest.raises(InputError, match="taskParameterMaxLength"):
        Auditor.from_config({"scaffolder": {"auditor": {"taskParameterMaxLength": -2}}})

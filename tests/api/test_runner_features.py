"""Runner features through the API: each, if, step outputs, checkpoints, secrets schema."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from scaffolder.actions.base import ActionContext, CancelSignal, TemplateAction
from scaffolder.services import Services
from tests.conftest import wait_for_status

pytestmark = pytest.mark.both_engines


def _template(services: Services, name: str, spec: dict[str, Any]) -> None:
    services.catalog.replace_location(
        f"file:/{name}.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": name},
                "spec": {"type": "service", **spec},
            }
        ],
    )


def _run(client: FlaskClient, services: Services, name: str, **body: Any) -> list[dict[str, Any]]:
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": f"template:default/{name}", "values": {}, **body},
    )
    assert res.status_code == 201, res.json
    wait_for_status(services, res.json["id"])
    events: list[dict[str, Any]] = client.get(
        f"/api/scaffolder/v2/tasks/{res.json['id']}/events"
    ).json
    return events


def test_each_if_and_step_outputs(client: FlaskClient, services: Services) -> None:
    services.registry.register(
        TemplateAction(
            id="test:echo",
            handler=lambda ctx: ctx.output("value", ctx.input["value"]),
            input_schema={"type": "object", "properties": {"value": {}}},
        )
    )
    _template(
        services,
        "features",
        {
            "parameters": [{"properties": {"items": {"type": "array", "default": ["a", "b"]}}}],
            "steps": [
                {
                    "id": "loop",
                    "action": "test:echo",
                    "each": "${{ parameters.items }}",
                    "input": {"value": "${{ each.key }}-${{ each.value }}"},
                },
                {"id": "skipped", "action": "debug:log", "if": False, "input": {"message": "x"}},
                {
                    "id": "skipped-expr",
                    "action": "debug:log",
                    "if": "${{ parameters.items.length > 5 }}",
                    "input": {"message": "x"},
                },
                {"id": "one", "action": "test:echo", "input": {"value": {"n": 1}}},
            ],
            "output": {
                "loop": "${{ steps.loop.output.value }}",
                "one": "${{ steps.one.output.value.n }}",
                "missing": "${{ steps.skipped.output.value }}",
            },
        },
    )
    events = _run(client, services, "features")
    messages = [e["body"]["message"] for e in events]
    assert '\x1b[32minfo\x1b[39m: Running step each: {"key":"0","value":"a"}' in messages
    assert "Skipping step skipped because its if condition was false" in messages
    assert "Skipping step skipped-expr because its if condition was false" in messages
    assert events[-1]["body"]["output"] == {"loop": ["0-a", "1-b"], "one": 1}


def test_each_that_is_not_a_list_fails(client: FlaskClient, services: Services) -> None:
    _template(
        services,
        "bad-each",
        {"steps": [{"id": "x", "action": "debug:log", "each": "${{ 42 }}", "input": {}}]},
    )
    events = _run(client, services, "bad-each")
    assert events[-1]["body"]["error"] == {
        "name": "InputError",
        "message": 'Invalid value on action debug:log.each parameter, "${{ 42 }}" must resolve '
        "to an array or object",
    }


def test_checkpoint_runs_once_across_retry(
    client: FlaskClient, services: Services, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    counter.write_text("0")

    def handler(ctx: ActionContext) -> None:
        def create() -> dict[str, str]:
            counter.write_text(str(int(counter.read_text()) + 1))
            return {"repo": "made"}

        ctx.output("made", ctx.checkpoint("create.repo", create)["repo"])
        if ctx.input.get("fail"):
            raise RuntimeError("push failed")

    services.registry.register(TemplateAction(id="test:create", handler=handler))
    _template(
        services,
        "checkpointed",
        {
            "parameters": [{"properties": {"fail": {"type": "boolean"}}}],
            "steps": [
                {"id": "c", "action": "test:create", "input": {"fail": "${{ parameters.fail }}"}}
            ],
        },
    )
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": "template:default/checkpointed", "values": {"fail": True}},
    )
    task_id = res.json["id"]
    assert wait_for_status(services, task_id) == "failed"
    assert client.post(f"/api/scaffolder/v2/tasks/{task_id}/retry", json={}).status_code == 201
    assert wait_for_status(services, task_id) == "failed"
    assert counter.read_text() == "1"


def test_secrets_schema_is_enforced(client: FlaskClient, services: Services) -> None:
    _template(
        services,
        "needs-secret",
        {
            "secrets": {
                "schema": {
                    "type": "object",
                    "required": ["TOKEN"],
                    "properties": {"TOKEN": {"type": "string", "minLength": 4}},
                }
            },
            "steps": [],
        },
    )
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": "template:default/needs-secret", "values": {}},
    )
    assert res.status_code == 400
    [error] = res.json["errors"]
    assert error["message"] == "secrets.TOKEN is required"
    assert error["property"] == "secrets"
    assert error["instance"] == {}
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={
            "templateRef": "template:default/needs-secret",
            "values": {},
            "secrets": {"TOKEN": "ab"},
        },
    )
    assert res.json["errors"][0]["message"] == "secrets.TOKEN does not meet minimum length of 4"
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={
            "templateRef": "template:default/needs-secret",
            "values": {},
            "secrets": {"TOKEN": "abcd"},
        },
    )
    assert res.status_code == 201


def test_hidden_step_values_are_dropped(client: FlaskClient, services: Services) -> None:
    _template(
        services,
        "with-when",
        {
            "parameters": [
                {"properties": {"kind": {"type": "string"}}},
                {
                    "when": "${{ parameters.kind == 'web' }}",
                    "required": ["port"],
                    "properties": {"port": {"type": "integer"}},
                },
            ],
            "steps": [],
        },
    )
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={
            "templateRef": "template:default/with-when",
            "values": {"kind": "worker", "port": 80},
        },
    )
    assert res.status_code == 201
    spec = client.get(f"/api/scaffolder/v2/tasks/{res.json['id']}").json["spec"]
    assert spec["parameters"] == {"kind": "worker"}
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": "template:default/with-when", "values": {"kind": "web"}},
    )
    assert res.status_code == 400
    assert res.json["errors"][0]["stack"] == 'instance requires property "port"'


def test_cancel_signal_terminates_attached_child() -> None:
    signal = CancelSignal()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    signal.attach(child)
    started = time.monotonic()
    signal.cancel()
    assert child.wait(timeout=5) != 0
    assert time.monotonic() - started < 5
    assert signal.cancelled
    assert signal.wait(0) is True

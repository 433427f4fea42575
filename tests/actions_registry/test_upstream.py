"""End to end: a stock Backstage scaffolder runs a template step that we serve.

Marked ``upstream``. A private copy of the upstream reference backend (started the way
``tests/catalog/test_actions_upstream.py`` starts it, with its ``node_modules``; ``make
upstream`` installs them) is configured as a Backstage that uses us as an action source::

    backend.actions.pluginSources: [ecs]
    discovery.endpoints: [{target: http://127.0.0.1:<ours>/api/{{pluginId}}, plugins: [ecs]}]

Our service runs in this process (cheroot, as ``scaffolder serve``) on another free loopback
port with auth on: it accepts only the reference's plugin tokens, verified against the
reference's own JWKS. Without node, the reference or its node_modules the test is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cheroot import wsgi

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from tests.catalog.test_actions_upstream import (
    copy_reference,
    node_modules,
    run_reference,
)
from tests.conftest import FIXTURE_TEMPLATES
from tests.postgres.cluster import free_port

pytestmark = pytest.mark.upstream

#: The reference's static token (its app-config.yaml): a service principal, so the tasks it
#: creates call us with a real plugin token (a "none" initiator would send an empty one).
REF_TOKEN = "ref-static-token-0123456789"
READY_TIMEOUT = 120.0
TASK_TIMEOUT = 120.0

CALLER_TEMPLATE = {
    "apiVersion": "scaffolder.backstage.io/v1beta3",
    "kind": "Template",
    "metadata": {"name": "ecs-caller", "title": "Runs one of the ecs scaffolder's templates"},
    "spec": {
        "owner": "group:default/platform",
        "type": "service",
        "parameters": [{"properties": {"name": {"type": "string"}}, "required": ["name"]}],
        "steps": [
            {
                "id": "remote",
                "name": "Run hello-template on the ecs scaffolder",
                "action": "ecs:execute-template",
                "input": {
                    "templateRef": "template:default/hello-template",
                    "values": {"name": "${{ parameters.name }}"},
                    "wait": True,
                },
            }
        ],
        # Backstage's Template schema wants links and text as literal arrays.
        "output": {
            "links": [
                {
                    "title": "${{ steps.remote.output.links[0].title }}",
                    "url": "${{ steps.remote.output.links[0].url }}",
                }
            ],
            "text": [
                {
                    "title": "${{ steps.remote.output.text[0].title }}",
                    "content": "${{ steps.remote.output.text[0].content }}",
                }
            ],
            "remoteLinks": "${{ steps.remote.output.links }}",
            "remoteTaskId": "${{ steps.remote.output.taskId }}",
            "remoteStatus": "${{ steps.remote.output.status }}",
        },
    },
}


@dataclass(frozen=True)
class Pair:
    """The reference backend and our service, wired together."""

    upstream: str
    ours: str
    services: Services

    def get(self, path: str) -> Any:
        res = requests.get(f"{self.upstream}{path}", headers=_bearer(), timeout=30)
        assert res.status_code == 200, res.text
        return res.json()


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {REF_TOKEN}"}


@contextlib.contextmanager
def _our_service(tmp: Path, port: int, upstream: str) -> Iterator[Services]:
    settings = Settings.from_config(
        {
            "backend": {
                "baseUrl": f"http://127.0.0.1:{port}",
                "database": {"connection": f"sqlite:///{tmp / 'ours.sqlite'}"},
                "workingDirectory": str(tmp / "work"),
                # No static token, no auth bypass: only the reference's plugin tokens.
                "auth": {"backstage": {"baseUrl": upstream}},
            },
            "catalog": {
                "locations": [{"type": "file", "target": f"{FIXTURE_TEMPLATES}/*/template.yaml"}]
            },
        }
    )
    services = build_services(settings)
    server = wsgi.Server(("127.0.0.1", port), create_app(services=services), numthreads=8)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield services
    finally:
        server.stop()
        thread.join(10)
        services.close()


@contextlib.contextmanager
def _reference(tmp: Path, port: int, ours: str, modules: Path) -> Iterator[str]:
    copy = copy_reference(tmp, modules)
    caller = copy / "templates" / "ecs-caller" / "template.yaml"
    caller.parent.mkdir(parents=True)
    caller.write_text(yaml.safe_dump(CALLER_TEMPLATE, sort_keys=False))
    base = f"http://127.0.0.1:{port}"
    config = yaml.safe_load((copy / "app-config.yaml").read_text())
    config["backend"]["baseUrl"] = base
    config["backend"]["listen"]["port"] = port
    config["backend"]["actions"] = {"pluginSources": ["ecs"]}
    config["discovery"] = {
        "endpoints": [{"target": f"{ours}/api/{{{{pluginId}}}}", "plugins": ["ecs"]}]
    }
    config["catalog"]["locations"].append(
        {
            "type": "file",
            "target": "./templates/ecs-caller/template.yaml",
            "rules": [{"allow": ["Template"]}],
        }
    )
    (copy / "app-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "NODE_ENV": "production", "BACKSTAGE_REF_NO_COOKIECUTTER": "1"}
    ready = f"{base}/api/catalog/entities/by-name/template/default/ecs-caller"
    with run_reference(copy, env, ready):
        yield base


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    modules = node_modules()
    if shutil.which("node") is None or modules is None:
        pytest.skip(
            "the upstream reference is not installed (node, the reference and its "
            "node_modules: `make upstream` installs them)"
        )
    tmp = Path(tempfile.mkdtemp(prefix="scaffolder-actions-upstream-"))
    try:
        our_port, upstream_port = free_port(), free_port()
        while upstream_port == our_port:
            upstream_port = free_port()
        ours = f"http://127.0.0.1:{our_port}"
        upstream = f"http://127.0.0.1:{upstream_port}"
        with (
            _our_service(tmp, our_port, upstream) as services,
            _reference(tmp, upstream_port, ours, modules),
        ):
            yield Pair(upstream=upstream, ours=ours, services=services)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_upstream_lists_our_actions_with_their_schemas(pair: Pair) -> None:
    listed = {a["id"]: a for a in pair.get("/api/scaffolder/v2/actions")}
    ours = requests.get(f"{pair.ours}/api/ecs/.backstage/actions/v1/actions", timeout=10)
    assert ours.status_code == 401  # only Backstage's plugin tokens get in
    expected = [
        "ecs:list-templates",
        "ecs:execute-template",
        "ecs:get-task-logs",
        "ecs:dry-run-template",
        "ecs:create-ecs-service",
    ]
    assert sorted(i for i in listed if i.startswith("ecs:")) == sorted(expected)
    execute = listed["ecs:execute-template"]
    assert execute["description"].startswith("Runs one of this scaffolder's templates")
    assert execute["schema"]["input"]["required"] == ["templateRef", "values"]
    assert execute["schema"]["input"]["properties"]["wait"]["type"] == "boolean"
    assert execute["schema"]["output"]["properties"]["taskId"]["type"] == "string"
    # Upstream's own actions are still there beside ours.
    assert "debug:log" in listed


def test_an_upstream_template_step_runs_our_template(pair: Pair) -> None:
    res = requests.post(
        f"{pair.upstream}/api/scaffolder/v2/tasks",
        json={"templateRef": "template:default/ecs-caller", "values": {"name": "svc-remote"}},
        headers=_bearer(),
        timeout=30,
    )
    assert res.status_code == 201, res.text
    task_id = res.json()["id"]
    deadline = time.monotonic() + TASK_TIMEOUT
    while (task := pair.get(f"/api/scaffolder/v2/tasks/{task_id}"))["status"] in (
        "open",
        "processing",
    ):
        assert time.monotonic() < deadline, "the upstream task did not finish"
        time.sleep(0.5)
    events = pair.get(f"/api/scaffolder/v2/tasks/{task_id}/events")
    completion = next(e for e in events if e["type"] == "completion")
    assert task["status"] == "completed", json.dumps(completion["body"])
    output = completion["body"]["output"]
    assert output["links"] == [{"title": "Fake repo", "url": "http://127.0.0.1/repos/svc-remote"}]
    assert output["text"] == [{"title": "Done", "content": "Created svc-remote"}]
    assert output["remoteLinks"] == output["links"]
    assert output["remoteStatus"] == "completed"
    log = "\n".join(str(e["body"].get("message")) for e in events)
    assert "Run hello-template on the ecs scaffolder" in log

    # The task ran here, for the reference's scaffolder plugin (a service: no createdBy).
    ours = pair.services.broker.store.get_task(output["remoteTaskId"])
    assert ours.status.value == "completed"
    assert ours.spec["parameters"]["name"] == "svc-remote"
    assert ours.created_by is None

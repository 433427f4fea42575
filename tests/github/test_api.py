"""Through the app: POST /v2/autocomplete/github/..., and GitHub steps of a real task."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from tests.conftest import wait_for_status
from tests.github.conftest import API, TOKEN, USER_TOKEN, run_body

AUTOCOMPLETE = "/api/scaffolder/v2/autocomplete"


@pytest.fixture
def github_services(make_settings: Callable[..., Settings]) -> Iterator[Services]:
    settings = make_settings({"integrations": {"github": [{"host": "github.com", "token": TOKEN}]}})
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def gh_client(github_services: Services) -> FlaskClient:
    return create_app(services=github_services).test_client()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("github/owners", {"token": "t"}, "request/body must have required property 'context'"),
        ("github/owners", {"context": {}}, "request/body must have required property 'token'"),
        ("github/owners", {"token": "", "context": {}}, "Missing token query parameter"),
        ("github/owners", {"token": 1, "context": {}}, "request/body/token must be string"),
        (
            "github/owners",
            {"token": "t", "context": {"host": 1}},
            "request/body/context/host must be string",
        ),
        ("gitlab/groups", {"token": "t", "context": {}}, "Unsupported provider: gitlab"),
        ("github/teams", {"token": "t", "context": {}}, "Invalid resource: teams"),
        (
            "github/branches",
            {"token": "t", "context": {"owner": "acme"}},
            "Missing owner and/or repository context parameter",
        ),
        (
            "github/owners",
            {"token": "t", "context": {"host": "gitlab.com"}},
            "No integration for host gitlab.com",
        ),
    ],
)
def test_autocomplete_errors(
    gh_client: FlaskClient, gh_api: responses.RequestsMock, path: str, body: Any, message: str
) -> None:
    res = gh_client.post(f"{AUTOCOMPLETE}/{path}", json=body)
    assert res.status_code == 400
    assert res.json == {
        "error": {"name": "InputError", "message": message},
        "request": {"method": "POST", "url": f"/v2/autocomplete/{path}"},
        "response": {"statusCode": 400},
    }


def test_autocomplete_resources(gh_client: FlaskClient, gh_api: responses.RequestsMock) -> None:
    gh_api.get(f"{API}/user/orgs", json=[{"login": "acme", "id": 1}, {"login": "labs", "id": 2}])
    gh_api.get(
        f"{API}/user/repos",
        json=[{"full_name": "acme/svc", "name": "svc"}, {"full_name": "ada/dotfiles"}],
    )
    gh_api.get(f"{API}/repos/acme/svc/branches", json=[{"name": "main"}, {"name": "dev"}])

    owners = gh_client.post(
        f"{AUTOCOMPLETE}/github/owners", json={"token": USER_TOKEN, "context": {}}
    )
    repos = gh_client.post(
        f"{AUTOCOMPLETE}/github/repositoriesWithOwner", json={"token": USER_TOKEN, "context": {}}
    )
    branches = gh_client.post(
        f"{AUTOCOMPLETE}/github/branches",
        json={"token": USER_TOKEN, "context": {"owner": "acme", "repository": "svc"}},
    )

    assert owners.json == {"results": [{"id": "acme"}, {"id": "labs"}]}
    assert repos.json == {"results": [{"id": "acme/svc"}, {"id": "ada/dotfiles"}]}
    assert branches.json == {"results": [{"id": "main"}, {"id": "dev"}]}
    assert all(c.request.headers["Authorization"] == f"token {USER_TOKEN}" for c in gh_api.calls)


def test_autocomplete_with_a_rejected_token(
    gh_client: FlaskClient, gh_api: responses.RequestsMock
) -> None:
    gh_api.get(f"{API}/user/orgs", status=401, json={"message": "Bad credentials"})
    res = gh_client.post(f"{AUTOCOMPLETE}/github/owners", json={"token": "bad", "context": {}})
    assert res.status_code == 400
    assert "rejected the credentials (401 Bad credentials)" in res.json["error"]["message"]


def test_actions_are_listed(gh_client: FlaskClient) -> None:
    actions = {a["id"]: a for a in gh_client.get("/api/scaffolder/v2/actions").json}
    for action_id in (
        "publish:github",
        "publish:github:pull-request",
        "github:repo:create",
        "github:repo:push",
        "github:environment:create",
        "github:webhook",
        "github:actions:dispatch",
    ):
        assert action_id in actions
    assert "description" not in actions["publish:github:pull-request"]
    assert len(actions["github:repo:create"]["examples"]) == 60


def _template(services: Services, steps: list[dict[str, Any]]) -> None:
    services.catalog.replace_location(
        "file:/gh.yaml",
        [
            {
                "apiVersion": "scaffolder.backstage.io/v1beta3",
                "kind": "Template",
                "metadata": {"name": "gh"},
                "spec": {"type": "service", "steps": steps},
            }
        ],
    )


def _run(client: FlaskClient, services: Services, secrets: dict[str, str]) -> tuple[str, list[Any]]:
    res = client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": "template:default/gh", "values": {}, "secrets": secrets},
    )
    assert res.status_code == 201, res.json
    status = wait_for_status(services, res.json["id"])
    events = client.get(f"/api/scaffolder/v2/tasks/{res.json['id']}/events").json
    return status, events


def test_a_task_fails_clearly_on_bad_credentials(
    gh_client: FlaskClient, github_services: Services, gh_api: responses.RequestsMock
) -> None:
    gh_api.get(f"{API}/users/acme", status=401, json={"message": "Bad credentials"})
    _template(
        github_services,
        [
            {
                "id": "publish",
                "action": "publish:github",
                "input": {
                    "repoUrl": "github.com?owner=acme&repo=svc",
                    "token": "${{ secrets.tok }}",
                },
            }
        ],
    )

    status, events = _run(gh_client, github_services, {"tok": USER_TOKEN})

    assert status == "failed"
    completion = events[-1]["body"]
    assert completion["error"]["name"] == "InputError"
    assert "rejected the credentials (401 Bad credentials)" in completion["error"]["message"]
    assert "output" not in completion or not completion["output"]
    text = json.dumps(events)
    assert USER_TOKEN not in text
    assert TOKEN not in text


def test_a_task_follows_a_workflow_run(
    gh_client: FlaskClient, github_services: Services, gh_api: responses.RequestsMock
) -> None:
    workflow = f"{API}/repos/acme/svc/actions/workflows/deploy.yaml"
    gh_api.post(
        f"{workflow}/dispatches",
        json={
            "workflow_run_id": 5,
            "run_url": f"{API}/repos/acme/svc/actions/runs/5",
            "html_url": "h",
        },
    )
    gh_api.get(f"{API}/repos/acme/svc/actions/runs/5", json=run_body(5, "completed", "success"))
    _template(
        github_services,
        [
            {
                "id": "deploy",
                "action": "github:actions:dispatch",
                "input": {
                    "repoUrl": "github.com?owner=acme&repo=svc",
                    "workflowId": "deploy.yaml",
                    "branchOrTagName": "main",
                    "returnWorkflowRunDetails": True,
                    "waitForCompletion": True,
                },
            }
        ],
    )

    status, events = _run(gh_client, github_services, {})

    assert status == "completed", events[-1]
    messages = [e["body"].get("message", "") for e in events]
    assert any("Workflow run 5 completed with conclusion success" in m for m in messages)
    assert json.loads(gh_api.calls[0].request.body)["return_run_details"] is True

"""github:repo:create, github:repo:push, github:environment:create and github:webhook."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import responses
from nacl.public import PrivateKey, SealedBox

from scaffolder.actions.builtin.github_environment_create import (
    create_github_environment_create_action,
)
from scaffolder.actions.builtin.github_repo_create import create_github_repo_create_action
from scaffolder.actions.builtin.github_repo_push import create_github_repo_push_action
from scaffolder.actions.builtin.github_webhook import create_github_webhook_action
from scaffolder.errors import NotFoundError
from scaffolder.integrations.github_auth import GithubConnector
from tests.github.conftest import (
    API,
    REPO_URL,
    TOKEN,
    FakeClock,
    RunAction,
    Task,
    files_at,
    repo_body,
    user_body,
)


def body(call: Any) -> Any:
    return json.loads(call.request.body)


def by_url(gh_api: responses.RequestsMock) -> dict[tuple[str, str], Any]:
    return {(c.request.method, c.request.url.split("?")[0]): c for c in gh_api.calls}


# --- github:repo:create ----------------------------------------------------------------------


def test_repo_create(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.post(
        f"{API}/orgs/acme/repos",
        status=201,
        json=repo_body("https://github.com/acme/svc.git"),
    )
    gh_api.put(f"{API}/repos/acme/svc/actions/permissions/access", status=204)
    gh_api.put(f"{API}/repos/acme/svc/subscription", json={"subscribed": True})
    gh_api.put(f"{API}/repos/acme/svc/actions/oidc/customization/sub", status=201, json={})

    run = run_action(
        create_github_repo_create_action(github=connector),
        {
            "repoUrl": REPO_URL,
            "autoInit": True,
            "workflowAccess": "organization",
            "subscribe": True,
            "customProperties": {"team": "platform"},
            "oidcCustomization": {"useDefault": False, "includeClaimKeys": ["repo"]},
        },
    )

    calls = by_url(gh_api)
    create = body(calls["POST", f"{API}/orgs/acme/repos"])
    assert create["auto_init"] is True
    assert create["custom_properties"] == {"team": "platform"}
    assert body(calls["PUT", f"{API}/repos/acme/svc/actions/permissions/access"]) == {
        "access_level": "organization"
    }
    assert body(calls["PUT", f"{API}/repos/acme/svc/subscription"]) == {
        "subscribed": True,
        "ignored": False,
    }
    assert body(calls["PUT", f"{API}/repos/acme/svc/actions/oidc/customization/sub"]) == {
        "use_default": False,
        "include_claim_keys": ["repo"],
    }
    assert run.outputs == {"remoteUrl": "https://github.com/acme/svc.git"}


def test_existing_variable_is_updated(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body(kind="User"))
    gh_api.post(f"{API}/user/repos", status=201, json=repo_body("https://github.com/acme/svc.git"))
    gh_api.post(
        f"{API}/repos/acme/svc/actions/variables",
        status=409,
        json={"message": "Already exists - Variable already exists"},
    )
    gh_api.patch(f"{API}/repos/acme/svc/actions/variables/REGION", status=204)

    run_action(
        create_github_repo_create_action(github=connector),
        {"repoUrl": REPO_URL, "repoVariables": {"REGION": "eu-west-1"}},
    )

    patch = by_url(gh_api)["PATCH", f"{API}/repos/acme/svc/actions/variables/REGION"]
    assert body(patch) == {"name": "REGION", "value": "eu-west-1"}


# --- github:repo:push ------------------------------------------------------------------------


def test_repo_push_to_existing_repository(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    run_action: RunAction,
    task: Task,
    bare_repo: Path,
) -> None:
    (task.workspace / "README.md").write_text("hello\n")
    gh_api.get(f"{API}/repos/acme/svc", json=repo_body(bare_repo.as_uri()))
    gh_api.put(f"{API}/repos/acme/svc/branches/main/protection", json={})
    action = create_github_repo_push_action(github=connector)

    run = run_action(action, {"repoUrl": REPO_URL, "protectEnforceAdmins": False})

    assert files_at(bare_repo, "main") == {"README.md": "hello\n"}
    assert run.outputs["remoteUrl"] == bare_repo.as_uri()
    assert run.outputs["repoContentsUrl"] == "https://github.com/acme/svc/blob/main"
    protection = by_url(gh_api)["PUT", f"{API}/repos/acme/svc/branches/main/protection"]
    assert body(protection)["enforce_admins"] is False

    again = run_action(action, {"repoUrl": REPO_URL})  # a retry: the push is not repeated
    assert again.outputs["commitHash"] == run.outputs["commitHash"]


def test_repo_push_to_missing_repository(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.get(f"{API}/repos/acme/svc", status=404, json={"message": "Not Found"})
    with pytest.raises(NotFoundError, match="GET /repos/acme/svc failed with 404: Not Found"):
        run_action(create_github_repo_push_action(github=connector), {"repoUrl": REPO_URL})


# --- github:environment:create ---------------------------------------------------------------


ENTITIES = {
    "user:default/alice": {"kind": "User", "metadata": {"name": "alice"}},
    "group:default/platform": {"kind": "Group", "metadata": {"name": "platform"}},
}


def test_environment_with_everything(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    clock: FakeClock,
    run_action: RunAction,
) -> None:
    private = PrivateKey.generate()
    env = f"{API}/repos/acme/svc/environments/production"
    by_id = f"{API}/repositories/123456/environments/production"
    gh_api.get(f"{API}/repos/acme/svc", json=repo_body("https://github.com/acme/svc.git"))
    gh_api.get(f"{API}/users/alice", json=user_body("alice", "User", id=501))
    gh_api.get(f"{API}/orgs/acme/teams/platform", json={"id": 42, "slug": "platform"})
    gh_api.put(env, json={"name": "production"})
    gh_api.post(f"{env}/deployment-branch-policies", json={"id": 1})
    gh_api.post(f"{by_id}/variables", status=201, json={})
    gh_api.get(
        f"{by_id}/secrets/public-key",
        json={"key_id": "k1", "key": base64.b64encode(bytes(private.public_key)).decode()},
    )
    gh_api.put(f"{by_id}/secrets/AWS_ROLE", status=201)

    run = run_action(
        create_github_environment_create_action(github=connector, entity_lookup=ENTITIES.get),
        {
            "repoUrl": REPO_URL,
            "name": "production",
            "deploymentBranchPolicy": {"protected_branches": False, "custom_branch_policies": True},
            "customBranchPolicyNames": ["main", "release/*"],
            "customTagPolicyNames": ["v*"],
            "environmentVariables": {"REGION": "eu-west-1"},
            "secrets": {"AWS_ROLE": "arn:aws:iam::1:role/deploy"},
            "waitTimer": 5,
            "preventSelfReview": True,
            "reviewers": ["user:alice", "group:default/platform", "user:ghost"],
        },
    )

    assert clock.sleeps == [2.0]
    calls = [c for c in gh_api.calls]
    assert body(next(c for c in calls if c.request.url == env)) == {
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
        "wait_timer": 5,
        "prevent_self_review": True,
        "reviewers": [{"type": "User", "id": 501}, {"type": "Team", "id": 42}],
    }
    policies = [body(c) for c in calls if c.request.url == f"{env}/deployment-branch-policies"]
    assert policies == [
        {"name": "main", "type": "branch"},
        {"name": "release/*", "type": "branch"},
        {"name": "v*", "type": "tag"},
    ]
    variable = next(c for c in calls if c.request.url == f"{by_id}/variables")
    assert body(variable) == {"name": "REGION", "value": "eu-west-1"}
    sealed = body(next(c for c in calls if c.request.url == f"{by_id}/secrets/AWS_ROLE"))
    assert sealed["key_id"] == "k1"
    assert SealedBox(private).decrypt(base64.b64decode(sealed["encrypted_value"])) == (
        b"arn:aws:iam::1:role/deploy"
    )
    assert run.at("warn") == ["Skipping reviewer user:ghost: not found in the catalog"]
    assert "arn:aws:iam::1:role/deploy" not in "\n".join(run.lines)
    assert run.outputs == {}


def test_environment_without_a_catalog_skips_reviewers(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.get(f"{API}/repos/acme/svc", json=repo_body("https://github.com/acme/svc.git"))
    gh_api.put(f"{API}/repos/acme/svc/environments/staging", json={"name": "staging"})

    run = run_action(
        create_github_environment_create_action(github=connector),
        {"repoUrl": REPO_URL, "name": "staging", "reviewers": ["user:alice"]},
    )

    assert run.at("warn") == [
        "Skipping reviewers user:alice: no catalog is available to look them up"
    ]
    put = next(c for c in gh_api.calls if c.request.method == "PUT")
    assert body(put) == {}


def test_environment_reviewer_unknown_to_github_is_logged(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.get(f"{API}/repos/acme/svc", json=repo_body("https://github.com/acme/svc.git"))
    gh_api.get(f"{API}/users/alice", status=404, json={"message": "Not Found"})
    gh_api.put(f"{API}/repos/acme/svc/environments/staging", json={"name": "staging"})

    run = run_action(
        create_github_environment_create_action(github=connector, entity_lookup=ENTITIES.get),
        {"repoUrl": REPO_URL, "name": "staging", "reviewers": ["user:default/alice"]},
    )

    assert run.at("error") == [
        "User not found: alice, GitHub GET /users/alice failed with 404: Not Found"
    ]


# --- github:webhook --------------------------------------------------------------------------


def test_webhook(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.post(f"{API}/repos/acme/svc/hooks", status=201, json={"id": 12345678, "active": True})

    run = run_action(
        create_github_webhook_action(github=connector),
        {
            "repoUrl": REPO_URL,
            "webhookUrl": "https://ci.example.com/hook",
            "webhookSecret": "whsec-very-secret",
            "events": ["push", "pull_request"],
            "contentType": "json",
            "insecureSsl": True,
        },
    )

    assert body(gh_api.calls[0]) == {
        "config": {
            "url": "https://ci.example.com/hook",
            "content_type": "json",
            "insecure_ssl": "1",
            "secret": "whsec-very-secret",
        },
        "events": ["push", "pull_request"],
        "active": True,
    }
    assert run.messages == [
        f"Creating webhook https://ci.example.com/hook for repo {REPO_URL}",
        "Webhook 'https://ci.example.com/hook' created successfully",
    ]
    assert "whsec-very-secret" not in "\n".join(run.lines)


def test_webhook_errors_are_warnings(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.post(
        f"{API}/repos/acme/svc/hooks",
        status=422,
        json={"message": "Validation Failed", "errors": ["Hook already exists on this repository"]},
    )

    run = run_action(
        create_github_webhook_action(github=connector),
        {"repoUrl": REPO_URL, "webhookUrl": "https://ci.example.com/hook"},
    )

    assert run.at("warn") == [
        "Failed: create webhook 'https://ci.example.com/hook' on repo: 'svc', GitHub POST "
        "/repos/acme/svc/hooks failed with 422: Validation Failed (Hook already exists on this "
        "repository)"
    ]
    sent = body(gh_api.calls[0])
    assert sent["config"] == {
        "url": "https://ci.example.com/hook",
        "content_type": "form",
        "insecure_ssl": "0",
    }
    assert sent["events"] == ["push"]


def test_webhook_dry_run_calls_nothing(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    run = run_action(
        create_github_webhook_action(github=connector),
        {"repoUrl": REPO_URL, "webhookUrl": "https://ci.example.com/hook"},
        is_dry_run=True,
    )
    assert run.messages[-1] == "Dry run complete"
    assert len(gh_api.calls) == 0
    assert TOKEN not in "\n".join(run.lines)

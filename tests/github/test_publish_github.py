"""publish:github: every GitHub call it makes, the push to a real bare repository, and each
failure surfacing as a clear error with nothing reported as done."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from nacl.public import PrivateKey, SealedBox

from scaffolder.actions.builtin.publish_github import create_publish_github_action
from scaffolder.errors import ConflictError, InputError, NotFoundError
from scaffolder.integrations.github import GithubUnavailableError
from scaffolder.integrations.github_auth import GithubConnector
from tests.github.conftest import (
    API,
    REPO_URL,
    TOKEN,
    USER_TOKEN,
    FakeClock,
    RunAction,
    Task,
    files_at,
    git,
    refs,
    repo_body,
    user_body,
)

PROTECTION = f"{API}/repos/acme/svc/branches/main/protection"


@pytest.fixture
def workspace(task: Task) -> Path:
    (task.workspace / "README.md").write_text("# svc\n")
    (task.workspace / "src").mkdir()
    (task.workspace / "src" / "app.py").write_text("print('hi')\n")
    return task.workspace


def body(call: Any) -> Any:
    return json.loads(call.request.body)


def mock_org_create(gh_api: responses.RequestsMock, bare: Path) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.post(f"{API}/orgs/acme/repos", status=201, json=repo_body(bare.as_uri()))
    gh_api.put(PROTECTION, json={"url": PROTECTION})


def test_creates_pushes_protects_and_outputs(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    private = PrivateKey.generate()
    mock_org_create(gh_api, bare_repo)
    gh_api.get(f"{API}/orgs/acme/teams/platform", json={"id": 42, "slug": "platform"})
    gh_api.put(f"{API}/orgs/acme/teams/platform/repos/acme/svc", status=204)
    gh_api.put(f"{API}/repos/acme/svc/collaborators/alice", status=201, json={"id": 1})
    gh_api.put(f"{API}/orgs/acme/teams/readers/repos/acme/svc", status=204)
    gh_api.put(f"{API}/repos/acme/svc/topics", json={"names": ["backend", "python"]})
    gh_api.post(f"{API}/repos/acme/svc/actions/variables", status=201, json={})
    gh_api.get(
        f"{API}/repos/acme/svc/actions/secrets/public-key",
        json={
            "key_id": "568250167242549743",
            "key": base64.b64encode(bytes(private.public_key)).decode(),
        },
    )
    gh_api.put(f"{API}/repos/acme/svc/actions/secrets/DEPLOY_KEY", status=201)
    gh_api.post(f"{PROTECTION}/required_signatures", json={"enabled": True})

    run = run_action(
        create_publish_github_action(github=connector),
        {
            "repoUrl": REPO_URL,
            "description": "The svc service",
            "homepage": "https://svc.example.com",
            "repoVisibility": "internal",
            "access": "acme/platform",
            "collaborators": [
                {"user": "user:default/alice", "access": "push"},
                {"team": "group:default/readers", "access": "pull"},
            ],
            "topics": ["Backend", "PYTHON"],
            "repoVariables": {"REGION": "eu-west-1"},
            "secrets": {"DEPLOY_KEY": "hunter2-secret"},
            "requireCodeOwnerReviews": True,
            "requiredStatusCheckContexts": ["ci/build"],
            "requiredApprovingReviewCount": 2,
            "requiredCommitSigning": True,
            "gitAuthorName": "Ada",
            "gitAuthorEmail": "ada@example.com",
        },
    )

    calls = {(c.request.method, c.request.url.split("?")[0]): c for c in gh_api.calls}
    create = body(calls["POST", f"{API}/orgs/acme/repos"])
    assert create == {
        "name": "svc",
        "private": False,
        "description": "The svc service",
        "homepage": "https://svc.example.com",
        "delete_branch_on_merge": False,
        "allow_merge_commit": True,
        "allow_squash_merge": True,
        "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
        "squash_merge_commit_message": "COMMIT_MESSAGES",
        "allow_rebase_merge": True,
        "allow_auto_merge": False,
        "allow_update_branch": False,
        "visibility": "internal",
    }
    assert body(calls["PUT", f"{API}/orgs/acme/teams/platform/repos/acme/svc"]) == {
        "permission": "admin"
    }
    assert body(calls["PUT", f"{API}/repos/acme/svc/collaborators/alice"]) == {"permission": "push"}
    assert body(calls["PUT", f"{API}/orgs/acme/teams/readers/repos/acme/svc"]) == {
        "permission": "pull"
    }
    assert body(calls["PUT", f"{API}/repos/acme/svc/topics"]) == {"names": ["backend", "python"]}
    assert body(calls["POST", f"{API}/repos/acme/svc/actions/variables"]) == {
        "name": "REGION",
        "value": "eu-west-1",
    }
    sealed = body(calls["PUT", f"{API}/repos/acme/svc/actions/secrets/DEPLOY_KEY"])
    assert sealed["key_id"] == "568250167242549743"
    opened = SealedBox(private).decrypt(base64.b64decode(sealed["encrypted_value"]))
    assert opened == b"hunter2-secret"
    assert body(calls["PUT", PROTECTION]) == {
        "required_status_checks": {"strict": True, "contexts": ["ci/build"]},
        "restrictions": None,
        "enforce_admins": True,
        "required_pull_request_reviews": {
            "required_approving_review_count": 2,
            "require_code_owner_reviews": True,
            "dismiss_stale_reviews": False,
            "require_last_push_approval": False,
        },
        "required_conversation_resolution": False,
        "required_linear_history": False,
        "block_creations": False,
    }
    assert ("POST", f"{PROTECTION}/required_signatures") in calls
    for call in gh_api.calls:
        assert call.request.headers["Authorization"] == f"token {TOKEN}"

    assert refs(bare_repo) == ["refs/heads/main"]
    commit = git("--git-dir", str(bare_repo), "rev-parse", "refs/heads/main").strip()
    assert files_at(bare_repo, "main") == {"README.md": "# svc\n", "src/app.py": "print('hi')\n"}
    log = git("--git-dir", str(bare_repo), "log", "--format=%an <%ae>|%s", "main")
    assert log.strip() == "Ada <ada@example.com>|initial commit"
    assert run.outputs == {
        "commitHash": commit,
        "remoteUrl": bare_repo.as_uri(),
        "repoContentsUrl": "https://github.com/acme/svc/blob/main",
    }
    assert not run.at("warn")
    text = "\n".join(run.lines) + json.dumps(run.outputs)
    assert "hunter2-secret" not in text
    assert TOKEN not in text


def test_user_owner_and_source_path(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body(kind="User"))
    gh_api.post(f"{API}/user/repos", status=201, json=repo_body(bare_repo.as_uri()))
    gh_api.put(f"{API}/repos/acme/svc/branches/trunk/protection", json={})

    run = run_action(
        create_publish_github_action(
            github=connector, config={"scaffolder": {"defaultCommitMessage": "Scaffolded"}}
        ),
        {"repoUrl": REPO_URL, "sourcePath": "src", "defaultBranch": "trunk", "token": USER_TOKEN},
    )

    create = body(next(c for c in gh_api.calls if c.request.url == f"{API}/user/repos"))
    assert "visibility" not in create
    assert create["private"] is True
    assert all(c.request.headers["Authorization"] == f"token {USER_TOKEN}" for c in gh_api.calls)
    assert files_at(bare_repo, "trunk") == {"app.py": "print('hi')\n"}
    assert git("--git-dir", str(bare_repo), "log", "--format=%s", "trunk").strip() == "Scaffolded"
    assert run.outputs["repoContentsUrl"] == "https://github.com/acme/svc/blob/trunk"


def test_existing_repository_is_a_conflict_and_nothing_is_pushed(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.post(
        f"{API}/orgs/acme/repos",
        status=422,
        json={
            "message": "Repository creation failed.",
            "errors": [
                {
                    "resource": "Repository",
                    "code": "custom",
                    "field": "name",
                    "message": "name already exists on this account",
                }
            ],
        },
    )

    with pytest.raises(ConflictError) as caught:
        run_action(create_publish_github_action(github=connector), {"repoUrl": REPO_URL})

    assert caught.value.message == (
        "Failed to create the Organization repository acme/svc, Repository creation failed. "
        "(name already exists on this account)"
    )
    assert refs(bare_repo) == []
    assert [c.request.method for c in gh_api.calls] == ["GET", "POST"]


def test_a_retry_uses_the_repository_this_task_created(
    gh_api: responses.RequestsMock,
    clock: FakeClock,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    mock_org_create(gh_api, bare_repo)
    gh_api.put(f"{API}/repos/acme/svc/topics", status=500, json={"message": "boom"})
    gh_api.post(
        f"{API}/repos/acme/svc/actions/variables",
        body=requests.ConnectionError("Connection reset by peer"),
    )
    github = GithubConnector(
        connector_integrations(),
        sleep=clock.sleep,
        clock=clock,
        push_schemes=("file",),
    )
    action = create_publish_github_action(github=github)
    inputs = {"repoUrl": REPO_URL, "topics": ["x"], "repoVariables": {"A": "1"}}

    with pytest.raises(GithubUnavailableError, match="Could not reach GitHub"):
        run_action(action, inputs)
    assert refs(bare_repo) == []  # configuration failed: nothing pushed

    gh_api.replace(responses.POST, f"{API}/repos/acme/svc/actions/variables", status=201, json={})
    # Also: an earlier push of this task may have landed; the retry replaces it.
    (workspace / "extra.txt").write_text("x\n")
    run = run_action(action, inputs)

    creates = [c for c in gh_api.calls if c.request.url == f"{API}/orgs/acme/repos"]
    assert len(creates) == 1
    assert "Repository acme/svc was created by an earlier attempt of this task" in run.messages
    assert run.at("warn") == [
        "Skipping topics x, GitHub PUT /repos/acme/svc/topics failed with 500: boom"
    ]
    assert "extra.txt" in files_at(bare_repo, "main")


def connector_integrations() -> Any:
    from scaffolder.integrations.scm import ScmIntegrations

    return ScmIntegrations.from_config(
        {"integrations": {"github": [{"host": "github.com", "token": TOKEN}]}}
    )


def test_protection_failure_is_only_a_warning(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.post(f"{API}/orgs/acme/repos", status=201, json=repo_body(bare_repo.as_uri()))
    gh_api.put(
        PROTECTION,
        status=403,
        json={
            "message": "Upgrade to GitHub Pro or make this repository public to enable this "
            "feature."
        },
    )

    run = run_action(create_publish_github_action(github=connector), {"repoUrl": REPO_URL})

    assert run.at("warn") == [
        "Branch protection was not enabled as it requires GitHub Pro for private repositories"
    ]
    assert set(run.outputs) == {"commitHash", "remoteUrl", "repoContentsUrl"}


def test_protection_retried_once_when_the_branch_is_not_there_yet(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    clock: FakeClock,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.post(f"{API}/orgs/acme/repos", status=201, json=repo_body(bare_repo.as_uri()))
    gh_api.put(PROTECTION, status=404, json={"message": "Branch not found"})
    gh_api.put(PROTECTION, status=404, json={"message": "Branch not found"})

    run = run_action(create_publish_github_action(github=connector), {"repoUrl": REPO_URL})

    assert len([c for c in gh_api.calls if c.request.url == PROTECTION]) == 2
    assert run.at("warn") == [
        "Skipping: default branch protection on 'svc', GitHub PUT "
        "/repos/acme/svc/branches/main/protection failed with 404: Branch not found"
    ]
    assert "commitHash" in run.outputs


def test_bad_credentials_fail_clearly_with_nothing_done(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    gh_api.get(f"{API}/users/acme", status=401, json={"message": "Bad credentials"})

    with pytest.raises(InputError) as caught:
        run_action(create_publish_github_action(github=connector), {"repoUrl": REPO_URL})

    assert "rejected the credentials (401 Bad credentials)" in caught.value.message
    assert TOKEN not in caught.value.message
    assert refs(bare_repo) == []


def test_unknown_owner_is_not_found(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.get(f"{API}/users/acme", status=404, json={"message": "Not Found"})
    with pytest.raises(NotFoundError, match="GET /users/acme failed with 404"):
        run_action(create_publish_github_action(github=connector), {"repoUrl": REPO_URL})


def test_unknown_access_team_is_not_found(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.get(f"{API}/orgs/acme/teams/ghosts", status=404, json={"message": "Not Found"})
    with pytest.raises(NotFoundError) as caught:
        run_action(
            create_publish_github_action(github=connector),
            {"repoUrl": REPO_URL, "access": "acme/ghosts"},
        )
    assert caught.value.message == (
        "Received 'Not Found' from the API; one of org: acme or team: ghosts was not found "
        "within GitHub."
    )
    assert len(gh_api.calls) == 2  # nothing created


def test_rate_limited_creation_waits_then_succeeds(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    clock: FakeClock,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.post(
        f"{API}/orgs/acme/repos",
        status=403,
        json={"message": "API rate limit exceeded for installation ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.now) + 20)},
    )
    gh_api.post(f"{API}/orgs/acme/repos", status=201, json=repo_body(bare_repo.as_uri()))
    gh_api.put(PROTECTION, json={})

    run = run_action(create_publish_github_action(github=connector), {"repoUrl": REPO_URL})

    assert clock.sleeps == [21.0]
    assert refs(bare_repo) == ["refs/heads/main"]
    assert run.outputs["remoteUrl"] == bare_repo.as_uri()


def test_unreachable_github_fails_clearly(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    clock: FakeClock,
    run_action: RunAction,
) -> None:
    for _ in range(4):
        gh_api.get(f"{API}/users/acme", body=requests.ConnectionError("Name or service not known"))

    with pytest.raises(GithubUnavailableError) as caught:
        run_action(create_publish_github_action(github=connector), {"repoUrl": REPO_URL})

    assert caught.value.message == (
        "Could not reach GitHub at https://api.github.com (GET /users/acme): "
        "Name or service not known"
    )
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_clone_url_schemes_are_limited(
    gh_api: responses.RequestsMock,
    clock: FakeClock,
    run_action: RunAction,
    workspace: Path,
    bare_repo: Path,
) -> None:
    github = GithubConnector(connector_integrations(), sleep=clock.sleep, clock=clock)
    gh_api.get(f"{API}/users/acme", json=user_body())
    gh_api.post(f"{API}/orgs/acme/repos", status=201, json=repo_body(bare_repo.as_uri()))

    with pytest.raises(InputError, match="only https clone URLs are pushed to"):
        run_action(create_publish_github_action(github=github), {"repoUrl": REPO_URL})
    assert refs(bare_repo) == []


@pytest.mark.parametrize(
    ("repo_url", "message"),
    [
        ("gitlab.com?owner=o&repo=r", "No matching integration configuration for host gitlab.com"),
        ("github.com?repo=r", "missing owner"),
    ],
)
def test_repo_url_errors(
    connector: GithubConnector, run_action: RunAction, repo_url: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        run_action(create_publish_github_action(github=connector), {"repoUrl": repo_url})

"""publish:git with real git: a local host of bare repositories, and one over loopback HTTP."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal, TemplateAction
from scaffolder.actions.builtin.publish_git import create_publish_git_action
from scaffolder.errors import ConflictError, InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations.git_push import create_bare_repository
from scaffolder.integrations.scm import ScmIntegrations
from tests.actions.conftest import write_tree
from tests.integration.git_tools import GitHttpServer, GitSpy, real_git, serve_git_http

TOKEN = "glpat-publish-git-token"
FILES = {
    "README.md": "# payments\n",
    "catalog-info.yaml": "apiVersion: backstage.io/v1alpha1\nkind: Component\n",
    "app/main.py": "print('hi')\n",
    ".gitignore": "*.log\n",
    "kept.log": "ignored by .gitignore, published anyway\n",
}


class Checkpoints:
    """The task state a retry sees: checkpoints as the runner stores them."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}

    def __call__(self, key: str, fn: Callable[[], Any]) -> Any:
        stored = self.stored.get(key)
        if stored is not None and stored["status"] == "success":
            return stored["value"]
        try:
            value = fn()
        except Exception as exc:
            self.stored[key] = {"status": "failed", "reason": str(exc)}
            raise
        self.stored[key] = {"status": "success", "value": {} if value is None else value}
        return value


@dataclass
class Run:
    lines: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Publisher:
    action: TemplateAction
    workspace: Path
    checkpoints: Checkpoints = field(default_factory=Checkpoints)

    def run(
        self,
        input: Mapping[str, Any],
        *,
        dry_run: bool = False,
        signal: CancelSignal | None = None,
        user: Mapping[str, Any] | None = None,
    ) -> Run:
        assert self.action.input_schema is not None
        jsonschema.Draft7Validator(self.action.input_schema).validate(dict(input))
        run = Run()
        ctx = ActionContext(
            input=dict(input),
            workspace_path=self.workspace,
            logger=ActionLogger(run.lines.append),
            signal=signal or CancelSignal(),
            task_id="task-1",
            step_id="publish",
            step_name="Publish",
            is_dry_run=dry_run,
            user=user or {},
            _output=run.outputs.__setitem__,
            _checkpoint=self.checkpoints,
        )
        self.action.handler(ctx)
        return run


@pytest.fixture
def git_root(tmp_path: Path) -> Path:
    return tmp_path / "git"


@pytest.fixture
def publisher(tmp_path: Path, workspace: Path, git_root: Path) -> Publisher:
    write_tree(workspace, FILES)
    config = {
        "integrations": {"git": [{"host": "localhost", "baseUrl": git_root.as_uri()}]},
    }
    integrations = ScmIntegrations.from_config(config, cwd=tmp_path)
    return Publisher(create_publish_git_action(integrations=integrations), workspace)


@pytest.fixture
def spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitSpy:
    installed = GitSpy.install(tmp_path / "spy")
    monkeypatch.setenv("PATH", f"{installed.bin}{os.pathsep}{os.environ['PATH']}")
    return installed


def tree_of(bare: Path, ref: str = "main") -> dict[str, str]:
    names = real_git("--git-dir", str(bare), "ls-tree", "-r", "--name-only", ref).split()
    return {n: real_git("--git-dir", str(bare), "show", f"{ref}:{n}") for n in names}


def test_publishes_the_workspace_to_a_new_bare_repository(
    publisher: Publisher, git_root: Path, tmp_path: Path
) -> None:
    run = publisher.run(
        {"repoUrl": "localhost?owner=platform&repo=payments", "description": "Payments API"}
    )

    bare = git_root / "platform" / "payments.git"
    remote = bare.as_uri()
    assert run.outputs == {
        "remoteUrl": remote,
        "repoContentsUrl": f"{remote}/blob/main",
        "commitHash": real_git("--git-dir", str(bare), "rev-parse", "main").strip(),
    }
    assert real_git("--git-dir", str(bare), "config", "core.bare").strip() == "true"
    assert (bare / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (bare / "description").read_text() == "Payments API\n"
    assert not (bare / "hooks").exists()  # no sample hooks copied in
    assert tree_of(bare) == FILES

    clone = tmp_path / "clone"
    real_git("clone", "-q", "--", remote, str(clone))
    assert (clone / "catalog-info.yaml").read_text() == FILES["catalog-info.yaml"]
    log = real_git("log", "--format=%an|%ae|%cn|%ce|%s", cwd=clone).splitlines()
    assert log == ["Scaffolder|scaffolder@backstage.io|Scaffolder|scaffolder@backstage.io|"
                   "initial commit"]  # fmt: skip
    assert f"Created bare repository {bare}" in run.log
    assert not (publisher.workspace / ".git").exists()


def test_source_path_branch_message_and_author_inputs(publisher: Publisher, git_root: Path) -> None:
    run = publisher.run(
        {
            "repoUrl": "localhost?owner=team-a&repo=svc.core_2",
            "sourcePath": "app",
            "defaultBranch": "trunk",
            "gitCommitMessage": "Scaffolded from ecs-web-service",
            "gitAuthorName": "Grace Hopper",
            "gitAuthorEmail": "grace@example.com",
        }
    )
    bare = git_root / "team-a" / "svc.core_2.git"
    assert tree_of(bare, "trunk") == {"main.py": FILES["app/main.py"]}
    assert (bare / "HEAD").read_text() == "ref: refs/heads/trunk\n"
    assert run.outputs["repoContentsUrl"] == f"{bare.as_uri()}/blob/trunk"
    log = real_git("--git-dir", str(bare), "log", "--format=%an|%ae|%cn|%ce|%s", "trunk")
    assert log.splitlines() == [
        "Grace Hopper|grace@example.com|Grace Hopper|grace@example.com|"
        "Scaffolded from ecs-web-service"
    ]


def test_author_and_message_from_config_then_the_task_user(
    tmp_path: Path, workspace: Path, git_root: Path
) -> None:
    write_tree(workspace, FILES)
    integrations = ScmIntegrations.from_config(
        {"integrations": {"git": [{"host": "localhost", "baseUrl": git_root.as_uri()}]}}
    )
    user = {
        "ref": "user:default/ada",
        "entity": {"spec": {"profile": {"displayName": "Ada L", "email": "ada@example.com"}}},
    }
    configured = Publisher(
        create_publish_git_action(
            integrations=integrations,
            config={
                "scaffolder": {
                    "defaultAuthor": {"name": "Platform Bot"},
                    "defaultCommitMessage": "Created by the platform",
                }
            },
        ),
        workspace,
    )
    configured.run({"repoUrl": "localhost?owner=o&repo=one"}, user=user)
    log = real_git("--git-dir", str(git_root / "o" / "one.git"), "log", "--format=%an|%ae|%s")
    # The name is configured; the email is not, so it is the user's (upstream: the default).
    assert log.splitlines() == ["Platform Bot|ada@example.com|Created by the platform"]


def test_an_existing_non_empty_repository_is_a_conflict_and_nothing_is_pushed(
    publisher: Publisher, git_root: Path, tmp_path: Path
) -> None:
    bare = git_root / "platform" / "payments.git"
    assert create_bare_repository(bare, branch="main")
    other = tmp_path / "other"
    write_tree(other, {"OTHER.md": "someone else's\n"})
    real_git("--git-dir", str(bare), "--work-tree", str(other), "add", "OTHER.md")
    real_git(
        "-c", "user.name=x", "-c", "user.email=x@x", "--git-dir", str(bare),
        "--work-tree", str(other), "commit", "-q", "-m", "theirs",
    )  # fmt: skip
    before = real_git("--git-dir", str(bare), "rev-parse", "main")

    with pytest.raises(ConflictError, match=r"platform/payments already exists on localhost"):
        publisher.run({"repoUrl": "localhost?owner=platform&repo=payments"})
    assert real_git("--git-dir", str(bare), "rev-parse", "main") == before

    # A directory that is not a repository is no place to publish either.
    (git_root / "platform" / "notes.git").mkdir()
    with pytest.raises(ConflictError, match="exists and is not a git repository"):
        publisher.run({"repoUrl": "localhost?owner=platform&repo=notes"})


def test_an_existing_empty_repository_is_published_to(publisher: Publisher, git_root: Path) -> None:
    bare = git_root / "platform" / "payments.git"
    assert create_bare_repository(bare, branch="main")
    run = publisher.run({"repoUrl": "localhost?owner=platform&repo=payments"})
    assert "exists and is empty; pushing to it" in run.log
    assert tree_of(bare) == FILES


def test_a_retry_after_a_failed_push_is_not_a_conflict(
    publisher: Publisher, git_root: Path, spy: GitSpy
) -> None:
    spy.fail_pushes()
    with pytest.raises(ScaffolderError, match="simulated network failure"):
        publisher.run({"repoUrl": "localhost?owner=platform&repo=payments"})
    bare = git_root / "platform" / "payments.git"
    assert bare.is_dir()  # created by the first attempt

    spy.fail_pushes(False)
    run = publisher.run({"repoUrl": "localhost?owner=platform&repo=payments"})
    assert "was created by an earlier attempt" in run.log
    assert tree_of(bare) == FILES
    assert (
        run.outputs["commitHash"] == real_git("--git-dir", str(bare), "rev-parse", "main").strip()
    )


def test_a_retry_after_the_push_landed_replaces_it_and_one_that_completed_pushes_nothing(
    publisher: Publisher, git_root: Path, spy: GitSpy
) -> None:
    url = {"repoUrl": "localhost?owner=platform&repo=payments"}
    first = publisher.run(url)
    bare = git_root / "platform" / "payments.git"

    # The attempt died after pushing, before its push checkpoint was stored.
    del publisher.checkpoints.stored[_push_key(publisher)]
    (publisher.workspace / "README.md").write_text("# payments, second attempt\n")
    second = publisher.run(url)
    assert second.outputs["commitHash"] != first.outputs["commitHash"]
    assert tree_of(bare)["README.md"] == "# payments, second attempt\n"

    # Both checkpoints stored: the same commit, no git at all.
    spy.clear()
    third = publisher.run(url)
    assert third.outputs == second.outputs
    assert spy.calls() == []


def _push_key(publisher: Publisher) -> str:
    [key] = [k for k in publisher.checkpoints.stored if ".push." in k]
    return key


@pytest.mark.parametrize(
    ("repo_url", "error"),
    [
        (
            "gitlab.example.com?owner=o&repo=r",
            "No matching integration configuration for host gitlab.example.com, please check "
            "your integrations config",
        ),
        (
            "github.com?owner=o&repo=r",
            "No integration for host github.com in integrations.git",
        ),
        (
            "localhost?owner=o",
            "Invalid repo URL passed to publisher: https://localhost/?owner=o, missing repo",
        ),
        ("localhost?repo=r", "missing owner"),
        ("localhost?owner=..&repo=r", "Invalid repository owner provided in repoUrl: '..'"),
        ("localhost?owner=-x&repo=r", "Invalid repository owner provided in repoUrl: '-x'"),
        ("localhost?owner=a%2Fb&repo=r", "Invalid repository owner provided in repoUrl: 'a/b'"),
        ("localhost?owner=o&repo=r.git", "Invalid repository name provided in repoUrl"),
        ("localhost?owner=o&repo=r%0a", "Invalid repository name provided in repoUrl"),
        ("local host?owner=o&repo=r", "TypeError: Invalid URL"),
    ],
)
def test_refused_repo_urls_fail_before_git_runs(
    repo_url: str, error: str, publisher: Publisher, git_root: Path, spy: GitSpy
) -> None:
    with pytest.raises(InputError) as caught:
        publisher.run({"repoUrl": repo_url})
    assert error in str(caught.value)
    assert spy.calls() == []
    assert not git_root.exists()


@pytest.mark.parametrize(
    ("input", "error"),
    [
        ({"defaultBranch": "--force"}, "Invalid branch name"),
        ({"defaultBranch": "refs/heads/x"}, "Invalid branch name"),
        ({"sourcePath": "../outside"}, "sourcePath"),
        ({"sourcePath": "README.md"}, "not a directory"),
        ({"gitAuthorEmail": "a@b>\nx"}, "Invalid git author email"),
    ],
)
def test_refused_inputs_fail_before_git_runs(
    input: dict[str, str], error: str, publisher: Publisher, git_root: Path, spy: GitSpy
) -> None:
    with pytest.raises(InputError, match=error):
        publisher.run({"repoUrl": "localhost?owner=o&repo=r", **input})
    assert spy.calls() == []
    assert not git_root.exists()


def test_dry_run_logs_and_outputs_the_urls_and_touches_nothing(
    publisher: Publisher, git_root: Path, spy: GitSpy
) -> None:
    run = publisher.run({"repoUrl": "localhost?owner=platform&repo=payments"}, dry_run=True)
    remote = (git_root / "platform" / "payments.git").as_uri()
    assert run.outputs == {"remoteUrl": remote, "repoContentsUrl": f"{remote}/blob/main"}
    assert f"Dry run: would push the workspace to {remote} (branch main" in run.log
    assert spy.calls() == []
    assert not git_root.exists()
    assert publisher.checkpoints.stored == {}


def test_cancel_stops_the_publish(publisher: Publisher, git_root: Path) -> None:
    signal = CancelSignal()
    signal.cancel()
    with pytest.raises(TaskCancelledError):
        publisher.run({"repoUrl": "localhost?owner=platform&repo=payments"}, signal=signal)
    assert not (git_root / "platform" / "payments.git").exists()


def test_schema_refuses_unknown_keys_and_requires_repo_url(publisher: Publisher) -> None:
    schema = publisher.action.input_schema
    assert schema is not None
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["repoUrl"]
    assert publisher.action.supports_dry_run
    with pytest.raises(jsonschema.ValidationError):
        publisher.run({"repoUrl": "localhost?owner=o&repo=r", "token": "x"})


# --- an https-like host with a token ------------------------------------------------------


@pytest.fixture
def http_host(tmp_path: Path) -> Iterator[GitHttpServer]:
    yield from serve_git_http(tmp_path / "http-root", username="bot", token=TOKEN)


@pytest.fixture
def remote_publisher(tmp_path: Path, workspace: Path, http_host: GitHttpServer) -> Publisher:
    write_tree(workspace, FILES)
    config = {
        "integrations": {
            "git": [
                {
                    "host": "code.example.com",
                    "baseUrl": http_host.base_url,
                    "token": TOKEN,
                    "username": "bot",
                }
            ]
        }
    }
    integrations = ScmIntegrations.from_config(config)
    return Publisher(create_publish_git_action(integrations=integrations), workspace)


def test_a_remote_host_gets_the_token_as_a_header_and_it_shows_nowhere(
    remote_publisher: Publisher, http_host: GitHttpServer, spy: GitSpy
) -> None:
    bare = http_host.root / "platform" / "payments.git"
    assert create_bare_repository(bare, branch="main")  # a remote host creates its own
    run = remote_publisher.run({"repoUrl": "code.example.com?owner=platform&repo=payments"})
    calls = spy.calls()

    remote = f"{http_host.base_url}/platform/payments.git"
    assert run.outputs["remoteUrl"] == remote
    assert tree_of(bare) == FILES
    encoded = base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    assert {r.get("Authorization") for r in http_host.requests} == {f"Basic {encoded}"}
    for text in (run.log, repr(run.outputs), *(" ".join(c.argv) for c in calls)):
        assert TOKEN not in text
        assert encoded not in text
    assert [c.env.get("GIT_CONFIG_KEY_0") for c in calls if c.command in ("ls-remote", "push")] == [
        "http.extraHeader",
        "http.extraHeader",
    ]
    for path in [*bare.rglob("*"), *remote_publisher.workspace.rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes()
            assert encoded.encode() not in path.read_bytes()
    assert "token=" not in repr(remote_publisher.action)


def test_a_missing_remote_repository_fails_clearly(
    remote_publisher: Publisher, http_host: GitHttpServer
) -> None:
    with pytest.raises(ScaffolderError) as caught:
        remote_publisher.run({"repoUrl": "code.example.com?owner=platform&repo=nope"})
    message = str(caught.value)
    assert message.startswith(f"Failed to read {http_host.base_url}/platform/nope.git: ")
    assert TOKEN not in message

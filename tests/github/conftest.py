"""Fixtures for the GitHub tests: GitHub's REST API through `responses`, a fake clock whose
sleeps are recorded instead of slept, real bare repositories to push to, and a real
`ActionContext` whose checkpoints persist across runs of the same "task"."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import responses

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal, TemplateAction
from scaffolder.integrations.github_auth import GithubConnector
from scaffolder.integrations.scm import ScmIntegrations

API = "https://api.github.com"
TOKEN = "ghp_integrationTOKEN0123456789"
USER_TOKEN = "gho_userTOKEN9876543210"
REPO_URL = "github.com?owner=acme&repo=svc"
_LEVEL = re.compile(r"^\x1b\[\d+m(\w+)\x1b\[39m: ", re.DOTALL)


class FakeClock:
    """Wall-clock seconds that only move when something sleeps."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gh_api() -> Iterator[responses.RequestsMock]:
    """GitHub's API: every request must be registered; unregistered ones fail the call."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def make_connector(
    clock: FakeClock, *, github: list[dict[str, Any]] | None = None, **kwargs: Any
) -> GithubConnector:
    config = {"integrations": {"github": github or [{"host": "github.com", "token": TOKEN}]}}
    return GithubConnector(
        ScmIntegrations.from_config(config),
        sleep=clock.sleep,
        clock=clock,
        push_schemes=("https", "file"),
        **kwargs,
    )


@pytest.fixture
def connector(clock: FakeClock) -> GithubConnector:
    return make_connector(clock)


@dataclass
class Run:
    """One action invocation: its context, log lines and outputs."""

    ctx: ActionContext
    lines: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[str]:
        return [_LEVEL.sub("", line) for line in self.lines]

    def at(self, level: str) -> list[str]:
        return [
            _LEVEL.sub("", line)
            for line in self.lines
            if (m := _LEVEL.match(line)) and m.group(1) == level
        ]


@dataclass
class Task:
    """What persists between runs of one task: its checkpoints and workspace."""

    workspace: Path
    checkpoints: dict[str, Any] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def checkpoint(self, step_id: str) -> Callable[[str, Callable[[], Any]], Any]:
        def run(key: str, fn: Callable[[], Any]) -> Any:
            stored_key = f"v1.task.checkpoint.{step_id}.{key}"
            stored = self.checkpoints.get(stored_key)
            if isinstance(stored, dict) and stored.get("status") == "success":
                return stored["value"]
            try:
                value = fn()
            except Exception as exc:
                self.checkpoints[stored_key] = {"status": "failed", "reason": str(exc)}
                raise
            self.checkpoints[stored_key] = {
                "status": "success",
                "value": {} if value is None else value,
            }
            return value

        return run


@pytest.fixture
def task(tmp_path: Path) -> Task:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return Task(workspace=workspace)


RunAction = Callable[..., Run]


@pytest.fixture
def run_action(task: Task) -> RunAction:
    """Validate ``input`` against the schema as the runner does, then run the handler."""

    def run(
        action: TemplateAction,
        input: Mapping[str, Any],
        *,
        is_dry_run: bool = False,
        signal: CancelSignal | None = None,
        user: Mapping[str, Any] | None = None,
    ) -> Run:
        if action.input_schema is not None:
            jsonschema.Draft7Validator(action.input_schema).validate(dict(input))
        result = Run(ctx=None)  # type: ignore[arg-type]
        result.ctx = ActionContext(
            input=dict(input),
            workspace_path=task.workspace,
            logger=ActionLogger(result.lines.append),
            signal=signal or CancelSignal(),
            task_id="task-1",
            step_id="publish",
            step_name="Publish",
            is_dry_run=is_dry_run,
            user=user or {},
            _output=result.outputs.__setitem__,
            _checkpoint=task.checkpoint("publish"),
        )
        action.handler(result.ctx)
        return result

    return run


# --- real repositories -----------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """An empty bare repository, what GitHub has right after creating one."""
    path = tmp_path / "remote" / "acme" / "svc.git"
    path.mkdir(parents=True)
    git("init", "-q", "--bare", str(path))
    return path


def refs(bare: Path) -> list[str]:
    out = git("--git-dir", str(bare), "for-each-ref", "--format=%(refname)")
    return out.split()


def files_at(bare: Path, ref: str) -> dict[str, str]:
    names = git("--git-dir", str(bare), "ls-tree", "-r", "--name-only", ref).split()
    return {n: git("--git-dir", str(bare), "show", f"{ref}:{n}") for n in names}


# --- GitHub's answers, in the shapes GitHub sends ---------------------------------------------


def user_body(login: str = "acme", kind: str = "Organization", id: int = 9001) -> dict[str, Any]:
    return {
        "login": login,
        "id": id,
        "node_id": "MDEyOk9yZ2FuaXphdGlvbjkwMDE=",
        "type": kind,
        "site_admin": False,
        "html_url": f"https://github.com/{login}",
        "url": f"{API}/users/{login}",
    }


def repo_body(
    clone_url: str,
    *,
    owner: str = "acme",
    name: str = "svc",
    id: int = 123456,
    default_branch: str = "main",
    push: bool = True,
) -> dict[str, Any]:
    """A repository as ``POST /orgs/{org}/repos`` (201) and ``GET /repos/{o}/{r}`` send it."""
    return {
        "id": id,
        "node_id": "R_kgDOJ8abcd",
        "name": name,
        "full_name": f"{owner}/{name}",
        "private": True,
        "visibility": "private",
        "owner": {"login": owner, "id": 9001, "type": "Organization"},
        "html_url": f"https://github.com/{owner}/{name}",
        "description": "The svc service",
        "fork": False,
        "url": f"{API}/repos/{owner}/{name}",
        "git_url": f"git://github.com/{owner}/{name}.git",
        "ssh_url": f"git@github.com:{owner}/{name}.git",
        "clone_url": clone_url,
        "default_branch": default_branch,
        "permissions": {
            "admin": True,
            "maintain": True,
            "push": push,
            "triage": True,
            "pull": True,
        },
        "created_at": "2026-11-27T10:00:00Z",
    }


def run_body(
    run_id: int,
    status: str,
    conclusion: str | None = None,
    *,
    created_at: str = "2023-11-14T22:13:25Z",
) -> dict[str, Any]:
    """A workflow run as ``GET /repos/{o}/{r}/actions/runs/{id}`` sends it."""
    return {
        "id": run_id,
        "name": "deploy",
        "head_branch": "main",
        "head_sha": "e5bd3914e2e596debea16f433f57875b5b90bcd6",
        "run_number": 7,
        "event": "workflow_dispatch",
        "status": status,
        "conclusion": conclusion,
        "workflow_id": 161335,
        "url": f"{API}/repos/acme/svc/actions/runs/{run_id}",
        "html_url": f"https://github.com/acme/svc/actions/runs/{run_id}",
        "created_at": created_at,
        "updated_at": created_at,
    }

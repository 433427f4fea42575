"""GitHub's REST API through `responses`, backed by real bare repositories.

``POST /orgs/{o}/repos`` creates a real bare repository (its clone URL a ``file://`` one) that
publish:github pushes to, and ``GET /repos/{o}/{r}/contents/{path}`` (what catalog:register
reads the published catalog-info.yaml with) answers from that repository. For the pipeline
bootstrap it also keeps what github:environment:create and github:actions:dispatch send:
environments, their variables, and workflow dispatches (each answered with run details; a
run is reported ``completed``/``success``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import responses

from scaffolder.integrations.github_auth import GithubConnector
from tests.github.conftest import API, repo_body, user_body

GIT_ENV = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


@dataclass(frozen=True)
class Dispatch:
    owner: str
    repo: str
    workflow: str
    body: dict[str, Any]
    run_id: int


class FakeGithub:
    """GitHub for the tests of this package (see the module docstring)."""

    def __init__(self, root: Path, mock: responses.RequestsMock) -> None:
        self.root = root
        self.created: list[dict[str, Any]] = []
        #: (owner, repo) -> environment name -> the PUT body
        self.environments: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        #: (owner, repo, environment) -> variable name -> value
        self.variables: dict[tuple[str, str, str], dict[str, str]] = {}
        self.dispatches: list[Dispatch] = []
        self._ids: dict[int, tuple[str, str]] = {}
        mock.add_callback("GET", re.compile(rf"{API}/users/[^/]+$"), self._user)
        mock.add_callback("POST", re.compile(rf"{API}/orgs/[^/]+/repos$"), self._create)
        protection = re.compile(rf"{API}/repos/[^/]+/[^/]+/branches/[^/]+/protection$")
        mock.add_callback("PUT", protection, lambda _: (200, {}, "{}"))
        mock.add_callback("GET", re.compile(rf"{API}/repos/[^/]+/[^/]+/contents/"), self._read)
        mock.add_callback("GET", re.compile(rf"{API}{_REPO}$"), self._get_repo)
        mock.add_callback(
            "PUT", re.compile(rf"{API}{_REPO}/environments/(?P<env>[^/]+)$"), self._environment
        )
        mock.add_callback(
            "POST",
            re.compile(rf"{API}/repositories/(?P<id>\d+)/environments/(?P<env>[^/]+)/variables$"),
            self._variable,
        )
        mock.add_callback(
            "POST",
            re.compile(rf"{API}{_REPO}/actions/workflows/(?P<wf>[^/]+)/dispatches$"),
            self._dispatch,
        )
        mock.add_callback("GET", re.compile(rf"{API}{_REPO}/actions/runs/(?P<run>\d+)$"), self._run)

    def bare(self, owner: str, repo: str) -> Path:
        return self.root / owner / f"{repo}.git"

    def run_url(self, owner: str, repo: str, run_id: int) -> str:
        return f"https://github.com/{owner}/{repo}/actions/runs/{run_id}"

    def _match(self, request: Any, pattern: str) -> dict[str, str]:
        found = re.search(pattern, request.path_url.split("?")[0])
        assert found, request.path_url
        return found.groupdict()

    def _id(self, owner: str, repo: str) -> int:
        for repo_id, name in self._ids.items():
            if name == (owner, repo):
                return repo_id
        repo_id = 700_000 + len(self._ids)
        self._ids[repo_id] = (owner, repo)
        return repo_id

    def _user(self, request: Any) -> tuple[int, dict[str, str], str]:
        login = request.path_url.split("?")[0].rsplit("/", 1)[-1]
        return 200, {}, json.dumps(user_body(login))

    def _create(self, request: Any) -> tuple[int, dict[str, str], str]:
        owner = request.path_url.split("/")[2]
        body = json.loads(request.body)
        self.created.append({"owner": owner, **body})
        bare = self.bare(owner, body["name"])
        if bare.exists():
            return 422, {}, json.dumps({"message": "Repository creation failed."})
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, env=GIT_ENV)
        answer = repo_body(bare.as_uri(), owner=owner, name=body["name"])
        answer["id"] = self._id(owner, body["name"])
        return 201, {}, json.dumps(answer)

    def _get_repo(self, request: Any) -> tuple[int, dict[str, str], str]:
        where = self._match(request, _REPO + "$")
        bare = self.bare(where["owner"], where["repo"])
        if not bare.exists():
            return 404, {}, json.dumps({"message": "Not Found"})
        answer = repo_body(bare.as_uri(), owner=where["owner"], name=where["repo"])
        answer["id"] = self._id(where["owner"], where["repo"])
        return 200, {}, json.dumps(answer)

    def _read(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        path, _, query = request.path_url.partition("?")
        _, _, owner, repo, _, file = path.split("/", 5)
        ref = query.removeprefix("ref=")
        shown = subprocess.run(
            ["git", "--git-dir", str(self.bare(owner, repo)), "show", f"{ref}:{file}"],
            capture_output=True, env=GIT_ENV,
        )  # fmt: skip
        if shown.returncode:
            return 404, {}, b'{"message": "Not Found"}'
        return 200, {}, shown.stdout

    def _environment(self, request: Any) -> tuple[int, dict[str, str], str]:
        where = self._match(request, _REPO + "/environments/(?P<env>[^/]+)$")
        body = json.loads(request.body or "{}")
        key = (where["owner"], where["repo"])
        self.environments.setdefault(key, {})[where["env"]] = body
        return 200, {}, json.dumps({"name": where["env"], "id": 1})

    def _variable(self, request: Any) -> tuple[int, dict[str, str], str]:
        where = self._match(request, r"/repositories/(?P<id>\d+)/environments/(?P<env>[^/]+)/")
        owner, repo = self._ids[int(where["id"])]
        assert where["env"] in self.environments.get((owner, repo), {}), "environment first"
        body = json.loads(request.body)
        found = self.variables.setdefault((owner, repo, where["env"]), {})
        if body["name"] in found:
            return 409, {}, json.dumps({"message": "Already exists"})
        found[body["name"]] = body["value"]
        return 201, {}, "{}"

    def _dispatch(self, request: Any) -> tuple[int, dict[str, str], str]:
        where = self._match(request, _REPO + "/actions/workflows/(?P<wf>[^/]+)/dispatches$")
        run_id = 9_100_000 + len(self.dispatches)
        body = json.loads(request.body)
        self.dispatches.append(Dispatch(where["owner"], where["repo"], where["wf"], body, run_id))
        if not body.get("return_run_details"):
            return 204, {}, ""
        api = f"{API}/repos/{where['owner']}/{where['repo']}/actions/runs/{run_id}"
        html = self.run_url(where["owner"], where["repo"], run_id)
        return 200, {}, json.dumps({"workflow_run_id": run_id, "run_url": api, "html_url": html})

    def _run(self, request: Any) -> tuple[int, dict[str, str], str]:
        where = self._match(request, _REPO + r"/actions/runs/(?P<run>\d+)$")
        run_id = int(where["run"])
        run = {
            "id": run_id,
            "status": "completed",
            "conclusion": "success",
            "html_url": self.run_url(where["owner"], where["repo"], run_id),
            "url": f"{API}/repos/{where['owner']}/{where['repo']}/actions/runs/{run_id}",
        }
        return 200, {}, json.dumps(run)


@contextlib.contextmanager
def fake_github(root: Path) -> Iterator[FakeGithub]:
    """`FakeGithub` on a fresh `responses` mock (only loopback and GitHub's API pass)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(re.compile(r"http://(127\.0\.0\.1|localhost)[:/]"))
        yield FakeGithub(root, mock)


@contextlib.contextmanager
def pushing_to_files() -> Iterator[None]:
    """Connectors built from configuration (by `build_services`) also push to the fake's
    ``file://`` clone URLs."""
    from_config = GithubConnector.from_config

    def connector(*args: Any, **kwargs: Any) -> GithubConnector:
        made = from_config(*args, **kwargs)
        made.push_schemes = frozenset({"https", "file"})
        return made

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GithubConnector, "from_config", connector)
        yield

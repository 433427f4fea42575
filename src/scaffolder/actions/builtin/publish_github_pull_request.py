"""``publish:github:pull-request``: commit the workspace to a branch and open a pull request.

No clone is needed: like upstream (``octokit-plugin-create-pull-request``) the commit is built
with GitHub's Git Data API: a blob per file, one tree on top of the base branch's tree, one
commit, the branch ref, then the pull request (or an update of the open one).
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import pathspec

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.actions.builtin.github_common import GithubRepo, connect
from scaffolder.errors import ConflictError, InputError, ScaffolderError
from scaffolder.integrations.git_push import DEFAULT_AUTHOR_EMAIL, DEFAULT_AUTHOR_NAME
from scaffolder.integrations.github import GithubError, segment
from scaffolder.integrations.github_auth import GithubConnector

#: GitHub takes at most this many assignees; upstream warns and sends them all.
MAX_ASSIGNEES = 10
#: What a dry run reports as the pull request number (upstream's).
DRY_RUN_PULL_REQUEST_NUMBER = 43


class GithubResponseError(ScaffolderError):
    """The pull request could not be created (upstream's error name)."""

    name = "GithubResponseError"


@dataclass(frozen=True, kw_only=True)
class _CommitDefaults:
    author_name: str | None = None
    author_email: str | None = None
    message: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> _CommitDefaults:
        scaffolder = config.get("scaffolder")
        scaffolder = scaffolder if isinstance(scaffolder, Mapping) else {}
        author = scaffolder.get("defaultAuthor")
        author = author if isinstance(author, Mapping) else {}

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) and value.strip() else None

        return cls(
            author_name=text(author.get("name")),
            author_email=text(author.get("email")),
            message=text(scaffolder.get("defaultCommitMessage")),
        )


@dataclass(frozen=True, kw_only=True)
class _File:
    path: str
    mode: str
    content: bytes
    symlink: bool = False


def create_publish_github_pull_request_action(
    *, github: GithubConnector, config: Mapping[str, Any] | None = None
) -> TemplateAction:
    """Build ``publish:github:pull-request``.

    Args:
        github: resolves tokens and connects to the configured GitHub hosts.
        config: the whole configuration, for ``scaffolder.defaultAuthor`` and
            ``scaffolder.defaultCommitMessage``.
    """
    defaults = _CommitDefaults.from_config(config or {})

    def handler(ctx: ActionContext) -> None:
        inputs = ctx.input
        target_path = inputs.get("targetPath")
        if target_path:
            _assert_valid_target_path(target_path, "targetPath")
        for entry in inputs.get("filesToDelete") or []:
            _assert_valid_target_path(entry, "filesToDelete entry")
        gh = connect(ctx, github)
        source_path = inputs.get("sourcePath")
        root = (
            ctx.resolve_path(source_path, input_name="sourcePath")
            if source_path
            else ctx.workspace_path
        )
        files = _serialize(root)
        branch = str(inputs["branchName"])
        if ctx.is_dry_run:
            ctx.logger.info("Performing dry run of creating pull request")
            ctx.output("targetBranchName", branch)
            ctx.output("remoteUrl", inputs["repoUrl"])
            ctx.output("pullRequestNumber", DRY_RUN_PULL_REQUEST_NUMBER)
            ctx.logger.info("Dry run complete")
            return
        try:
            pr: dict[str, Any] = ctx.checkpoint(
                f"create.pr.{gh.owner}.{gh.repo}.{branch}",
                lambda: _create_pull_request(ctx, gh, files, defaults) or {},
            )
            if not pr and inputs.get("createWhenEmpty") is False:
                ctx.logger.info("No changes to commit, pull request was not created")
                return
            if not pr:
                raise GithubResponseError("null response from Github")
        except (GithubError, ConflictError, InputError) as exc:
            raise GithubResponseError(
                f"Pull request creation failed; caused by {exc.name}: {exc.message}", cause=exc
            ) from exc
        number = int(pr["number"])
        if inputs.get("reviewers") or inputs.get("teamReviewers"):
            _request_reviewers(ctx, gh, number)
        if inputs.get("assignees"):
            _add_assignees(ctx, gh, number)
        ctx.output("targetBranchName", pr["baseRef"])
        ctx.output("remoteUrl", pr["html_url"])
        ctx.output("pullRequestNumber", number)

    return build_action("publish:github:pull-request", handler, supports_dry_run=True)


def _create_pull_request(
    ctx: ActionContext, gh: GithubRepo, files: list[_File], defaults: _CommitDefaults
) -> dict[str, Any] | None:
    inputs, client = ctx.input, gh.client
    head = str(inputs["branchName"])
    answer = client.request("GET", gh.path)
    repository: Mapping[str, Any] = answer.data or {}
    permissions = repository.get("permissions")
    if not permissions:
        raise InputError("Missing authentication: GitHub shows no permissions on the repository")
    base = str(inputs.get("targetBranchName") or repository.get("default_branch"))
    if head == base:
        raise InputError('"head" cannot be the same value as "base"')

    fork_owner = gh.owner
    is_user = "x-oauth-scopes" in answer.headers
    if inputs.get("forceFork") or (is_user and not permissions.get("push")):
        fork_owner = _ensure_fork(ctx, gh)
    fork_path = f"/repos/{segment(fork_owner)}/{segment(gh.repo)}"

    latest = client.get(f"{gh.path}/commits", params={"sha": base, "per_page": 1})[0]
    parent_sha, base_tree = str(latest["sha"]), str(latest["commit"]["tree"]["sha"])

    target_path = inputs.get("targetPath")
    tree: list[dict[str, Any]] = []
    for file in files:
        path = str(PurePosixPath(target_path, file.path)) if target_path else file.path
        if file.symlink:
            tree.append({"path": path, "mode": file.mode, "content": file.content.decode()})
            continue
        blob = client.post(
            f"{fork_path}/git/blobs",
            {"content": base64.b64encode(file.content).decode("ascii"), "encoding": "base64"},
        )
        tree.append({"path": path, "mode": file.mode, "sha": blob["sha"]})
    for entry in inputs.get("filesToDelete") or []:
        path = str(PurePosixPath(target_path, entry)) if target_path else entry
        try:
            client.request(
                "HEAD", f"{fork_path}/contents/{quote(path)}", params={"ref": parent_sha}
            )
        except GithubError:
            continue  # deleting what is not there breaks the tree; upstream skips it too
        tree = [t for t in tree if t["path"] != path]
        tree.append({"path": path, "mode": "100644", "sha": None})

    new_tree = base_tree
    if tree:
        new_tree = str(
            client.post(f"{fork_path}/git/trees", {"base_tree": base_tree, "tree": tree})["sha"]
        )
    if new_tree == base_tree and inputs.get("createWhenEmpty") is False:
        return None
    commit: dict[str, Any] = {
        "message": inputs.get("commitMessage") or defaults.message or inputs["title"],
        "tree": new_tree,
        "parents": [parent_sha],
    }
    author = _author(inputs, defaults)
    if author is not None:
        commit["author"] = author
    commit_sha = str(client.post(f"{fork_path}/git/commits", commit)["sha"])

    branch_ref = f"{fork_path}/git/refs/heads/{quote(head)}"
    branch_exists = client.exists(f"{fork_path}/git/ref/heads/{quote(head)}")
    open_prs = client.get(
        f"{gh.path}/pulls", params={"head": f"{fork_owner}:{head}", "state": "open"}
    )
    existing = open_prs[0] if open_prs else None
    if existing is not None and not inputs.get("update"):
        raise ConflictError(
            f"Pull request already exists: {existing.get('html_url')}. "
            "Set update=true to enable updating"
        )
    if branch_exists:
        client.patch(branch_ref, {"sha": commit_sha, "force": True})
    else:
        client.post(f"{fork_path}/git/refs", {"ref": f"refs/heads/{head}", "sha": commit_sha})
    body = {
        "title": inputs["title"],
        "body": inputs["description"],
        "base": base,
    }
    if existing is not None:
        pr = client.patch(f"{gh.path}/pulls/{segment(existing['number'])}", body)
        ctx.logger.info(f"Updated pull request {pr.get('html_url')}")
    else:
        body.update(head=f"{fork_owner}:{head}", draft=bool(inputs.get("draft", False)))
        pr = client.post(f"{gh.path}/pulls", body)
        ctx.logger.info(f"Created pull request {pr.get('html_url')}")
    return {
        "baseRef": (pr.get("base") or {}).get("ref", base),
        "html_url": pr.get("html_url"),
        "number": pr.get("number"),
    }


def _ensure_fork(ctx: ActionContext, gh: GithubRepo) -> str:
    login = str(gh.client.get("/user")["login"])
    forks = gh.client.paginate(f"{gh.path}/forks")
    if not any((f.get("owner") or {}).get("login") == login for f in forks):
        gh.client.post(f"{gh.path}/forks")
        ctx.logger.info(f"Forked {gh.owner}/{gh.repo} to {login}/{gh.repo}")
    return login


def _author(inputs: Mapping[str, Any], defaults: _CommitDefaults) -> dict[str, str] | None:
    if inputs.get("forceEmptyGitAuthor"):
        return None
    name = inputs.get("gitAuthorName") or defaults.author_name
    email = inputs.get("gitAuthorEmail") or defaults.author_email
    if not name and not email:
        return None
    return {"name": name or DEFAULT_AUTHOR_NAME, "email": email or DEFAULT_AUTHOR_EMAIL}


def _request_reviewers(ctx: ActionContext, gh: GithubRepo, number: int) -> None:
    inputs = ctx.input
    body: dict[str, Any] = {}
    if inputs.get("reviewers"):
        body["reviewers"] = inputs["reviewers"]
    if inputs.get("teamReviewers"):
        body["team_reviewers"] = list(dict.fromkeys(inputs["teamReviewers"]))

    def request() -> None:
        result = gh.client.post(f"{gh.path}/pulls/{number}/requested_reviewers", body)
        users = ", ".join(u.get("login", "") for u in result.get("requested_reviewers") or [])
        teams = ", ".join(t.get("slug", "") for t in result.get("requested_teams") or [])
        ctx.logger.info(
            f"Added users [{users}] and teams [{teams}] as reviewers to Pull request {number}"
        )

    try:
        ctx.checkpoint(f"request.reviewers.{gh.owner}.{gh.repo}.{number}", request)
    except GithubError as exc:
        ctx.logger.error(f"Failure when adding reviewers to Pull request {number}, {exc.message}")


def _add_assignees(ctx: ActionContext, gh: GithubRepo, number: int) -> None:
    assignees = list(ctx.input["assignees"])
    if len(assignees) > MAX_ASSIGNEES:
        ctx.logger.warn("Assignees list is too long, only the first 10 will be used.")

    def add() -> None:
        result = gh.client.post(f"{gh.path}/issues/{number}/assignees", {"assignees": assignees})
        added = ", ".join(a.get("login", "") for a in result.get("assignees") or [])
        ctx.logger.info(f"Added assignees [{added}] to Pull request {number}")

    try:
        ctx.checkpoint(f"add.assignees.{gh.owner}.{gh.repo}.{number}", add)
    except GithubError as exc:
        ctx.logger.error(f"Failure when adding assignees to Pull request {number}, {exc.message}")


def _assert_valid_target_path(path: str, input_name: str) -> None:
    if path.startswith("/") or ".." in path.split("/"):
        raise InputError(
            f"Invalid {input_name} '{path}': must be a relative path within the target "
            "repository, without '..' segments"
        )


def _serialize(root: Path) -> list[_File]:
    """Every file under ``root`` that no ``.gitignore`` ignores (``.git`` left out).

    Symlinks are kept as links (mode 120000, their target as content) and never followed.
    """
    files: list[_File] = []
    ignores: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        gitignore = Path(dirpath, ".gitignore")
        if ".gitignore" in filenames and gitignore.is_file() and not gitignore.is_symlink():
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
            ignores.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))
        kept_dirs = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = Path(dirpath, name)
            if name == ".git" or _ignored(ignores, rel + "/"):
                continue
            if full.is_symlink():
                files.append(_link(full, rel))
            else:
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if _ignored(ignores, rel):
                continue
            full = Path(dirpath, name)
            if full.is_symlink():
                files.append(_link(full, rel))
                continue
            mode = full.stat().st_mode
            executable = bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
            files.append(
                _File(
                    path=rel, mode="100755" if executable else "100644", content=full.read_bytes()
                )
            )
    return files


def _link(full: Path, rel: str) -> _File:
    return _File(path=rel, mode="120000", content=os.readlink(full).encode(), symlink=True)


def _ignored(ignores: list[tuple[str, pathspec.GitIgnoreSpec]], rel: str) -> bool:
    for base, spec in ignores:
        if base and not rel.startswith(base + "/"):
            continue
        if spec.match_file(rel[len(base) + 1 :] if base else rel):
            return True
    return False

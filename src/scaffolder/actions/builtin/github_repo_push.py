"""``github:repo:push``: push the workspace to an existing GitHub repository."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.actions.builtin.github_common import (
    connect,
    protect_default_branch,
    push_workspace,
)
from scaffolder.integrations.git_push import DEFAULT_COMMIT_MESSAGE, check_branch
from scaffolder.integrations.github_auth import GithubConnector

DEFAULT_BRANCH = "main"


def create_github_repo_push_action(
    *, github: GithubConnector, config: Mapping[str, Any] | None = None
) -> TemplateAction:
    """Build ``github:repo:push``.

    The repository must exist (a ``NotFoundError`` otherwise). The push runs once per task
    (a checkpoint), so a retry does not push a second initial commit; branch protection
    follows as in ``publish:github``. Like upstream, the commit message defaults to
    ``initial commit`` without consulting ``scaffolder.defaultCommitMessage``.

    Args:
        github: resolves tokens and connects to the configured GitHub hosts.
        config: the whole configuration, for ``scaffolder.defaultAuthor``.
    """
    settings = config or {}

    def handler(ctx: ActionContext) -> None:
        gh = connect(ctx, github)
        branch = check_branch(str(ctx.input.get("defaultBranch") or DEFAULT_BRANCH))
        target = gh.client.get(gh.path)
        remote_url = str(target.get("clone_url"))
        contents_url = f"{target.get('html_url')}/blob/{branch}"
        message = str(ctx.input.get("gitCommitMessage") or DEFAULT_COMMIT_MESSAGE)

        def push() -> str:
            return push_workspace(
                ctx, github, gh, remote_url, branch=branch, message=message, config=settings
            )

        commit: str = ctx.checkpoint(f"init.repo.publish.{gh.owner}.{gh.repo}", push)
        protect_default_branch(ctx, gh, branch)
        ctx.output("remoteUrl", remote_url)
        ctx.output("repoContentsUrl", contents_url)
        ctx.output("commitHash", commit)

    return build_action("github:repo:push", handler, supports_dry_run=False)

"""``publish:github``: create a GitHub repository, push the workspace to it, protect it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.actions.builtin.github_common import (
    connect,
    create_repository,
    protect_default_branch,
    push_workspace,
)
from scaffolder.integrations.git_push import check_branch, resolve_commit_message
from scaffolder.integrations.github_auth import GithubConnector

#: The branch pushed to. Upstream's handler defaults to ``main`` although its schema text
#: says ``master``.
DEFAULT_BRANCH = "main"


def create_publish_github_action(
    *, github: GithubConnector, config: Mapping[str, Any] | None = None
) -> TemplateAction:
    """Build ``publish:github``.

    The repository is created in the owner's organization, or for the token's user when the
    owner is a user, and configured (access, collaborators, topics, variables, sealed
    secrets, ...). The workspace (or ``sourcePath``) is then pushed as one commit to the
    default branch, and that branch is protected (a protection failure is a warning). An
    existing repository is a ``ConflictError`` and nothing is pushed, unless this task created
    it on an earlier run (its checkpoint).

    Args:
        github: resolves tokens and connects to the configured GitHub hosts.
        config: the whole configuration, for ``scaffolder.defaultAuthor`` and
            ``scaffolder.defaultCommitMessage``.
    """
    settings = config or {}

    def handler(ctx: ActionContext) -> None:
        gh = connect(ctx, github)
        branch = check_branch(str(ctx.input.get("defaultBranch") or DEFAULT_BRANCH))
        created, created_now = create_repository(ctx, gh, default_branch=branch)
        message = resolve_commit_message(ctx.input.get("gitCommitMessage"), settings)
        commit = push_workspace(
            ctx,
            github,
            gh,
            created["remoteUrl"],
            branch=branch,
            message=message,
            config=settings,
            force=not created_now,
        )
        protect_default_branch(ctx, gh, branch)
        ctx.output("commitHash", commit)
        ctx.output("remoteUrl", created["remoteUrl"])
        ctx.output("repoContentsUrl", created["repoContentsUrl"])

    return build_action("publish:github", handler, supports_dry_run=False)

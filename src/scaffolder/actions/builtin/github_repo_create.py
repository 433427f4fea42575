"""``github:repo:create``: create and configure a GitHub repository, without pushing."""

from __future__ import annotations

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.actions.builtin.github_common import connect, create_repository
from scaffolder.integrations.github_auth import GithubConnector


def create_github_repo_create_action(*, github: GithubConnector) -> TemplateAction:
    """Build ``github:repo:create``.

    Creates the repository as ``publish:github`` does (plus ``autoInit`` and
    ``workflowAccess``) and outputs ``remoteUrl``. Like upstream it does not set
    ``repoContentsUrl``, although the output schema lists it.
    """

    def handler(ctx: ActionContext) -> None:
        gh = connect(ctx, github)
        created, _ = create_repository(
            ctx, gh, default_branch=None, auto_init=ctx.input.get("autoInit")
        )
        ctx.output("remoteUrl", created["remoteUrl"])

    return build_action("github:repo:create", handler, supports_dry_run=False)

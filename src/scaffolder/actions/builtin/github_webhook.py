"""``github:webhook``: create a webhook on a GitHub repository (failures are warnings)."""

from __future__ import annotations

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.actions.builtin.github_common import connect
from scaffolder.integrations.github import GithubError
from scaffolder.integrations.github_auth import GithubConnector


def create_github_webhook_action(
    *, github: GithubConnector, default_webhook_secret: str | None = None
) -> TemplateAction:
    """Build ``github:webhook``.

    As upstream, a GitHub error while creating the hook is logged as a warning and the step
    succeeds; a bad ``repoUrl`` or missing credentials still fail it. In a dry run nothing
    is created.

    Args:
        github: resolves tokens and connects to the configured GitHub hosts.
        default_webhook_secret: the secret used when the input gives none.
    """

    def handler(ctx: ActionContext) -> None:
        inputs = ctx.input
        webhook_url = inputs["webhookUrl"]
        ctx.logger.info(f"Creating webhook {webhook_url} for repo {inputs['repoUrl']}")
        gh = connect(ctx, github)
        if ctx.is_dry_run:
            ctx.logger.info("Dry run complete")
            return
        config = {
            "url": webhook_url,
            "content_type": inputs.get("contentType", "form"),
            "insecure_ssl": "1" if inputs.get("insecureSsl", False) else "0",
        }
        secret = inputs.get("webhookSecret", default_webhook_secret)
        if secret is not None:
            config["secret"] = secret
        body = {
            "config": config,
            "events": inputs.get("events", ["push"]),
            "active": inputs.get("active", True),
        }

        def create() -> None:
            gh.client.post(f"{gh.path}/hooks", body)

        try:
            ctx.checkpoint(f"create.webhook.{gh.owner}.{gh.repo}.{webhook_url}", create)
        except GithubError as exc:
            ctx.logger.warn(
                f"Failed: create webhook '{webhook_url}' on repo: '{gh.repo}', {exc.message}"
            )
            return
        ctx.logger.info(f"Webhook '{webhook_url}' created successfully")

    return build_action("github:webhook", handler, supports_dry_run=True)

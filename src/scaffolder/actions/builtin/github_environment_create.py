"""``github:environment:create``: a deployment environment with its policies, reviewers,
variables and sealed secrets."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.actions.builtin.github_common import GithubRepo, connect, set_variable
from scaffolder.catalog.model import parse_entity_ref
from scaffolder.errors import InputError
from scaffolder.integrations.github import GithubError, seal_secret, segment
from scaffolder.integrations.github_auth import GithubConnector

#: Upstream waits this long first: an environment on a repository created a moment ago by
#: an earlier step may otherwise not be creatable yet.
SETTLE_SECONDS = 2.0

#: Looks an entity up by ref in the catalog; None when it is not there.
EntityLookup = Callable[[str], Mapping[str, Any] | None]


def create_github_environment_create_action(
    *, github: GithubConnector, entity_lookup: EntityLookup | None = None
) -> TemplateAction:
    """Build ``github:environment:create``.

    Reviewers are Backstage entity refs: a ``User`` becomes a GitHub user and a ``Group`` a
    team of the repository owner's organization. Without a catalog they are skipped with a
    warning; a ref the catalog does not know, or GitHub cannot find, is logged and skipped.

    Args:
        github: resolves tokens and connects to the configured GitHub hosts.
        entity_lookup: finds reviewer entities (the catalog), if there is one.
    """

    def handler(ctx: ActionContext) -> None:
        inputs = ctx.input
        gh = connect(ctx, github)
        gh.sleep(SETTLE_SECONDS)
        client, name = gh.client, str(inputs["name"])
        env = f"{gh.path}/environments/{segment(name)}"

        def get_repository_id() -> int:
            return int(client.get(gh.path)["id"])

        repository_id: int = ctx.checkpoint(f"get.repo.{gh.owner}.{gh.repo}", get_repository_id)
        by_id = f"/repositories/{segment(repository_id)}/environments/{segment(name)}"

        reviewers = _reviewers(ctx, gh, inputs.get("reviewers"), entity_lookup)
        body = {
            "deployment_branch_policy": inputs.get("deploymentBranchPolicy"),
            "wait_timer": inputs.get("waitTimer"),
            "prevent_self_review": inputs.get("preventSelfReview"),
            "reviewers": reviewers or None,
        }

        def create_environment() -> None:
            client.put(env, {k: v for k, v in body.items() if v is not None})

        ctx.checkpoint(
            f"create.or.update.environment.{gh.owner}.{gh.repo}.{name}", create_environment
        )
        ctx.logger.info(f"Environment {name} is set on {gh.owner}/{gh.repo}")

        for kind, key in (("branch", "customBranchPolicyNames"), ("tag", "customTagPolicyNames")):
            for pattern in inputs.get(key) or []:
                _add_policy(ctx, gh, env, kind, name, pattern)

        for var_name, value in (inputs.get("environmentVariables") or {}).items():
            ctx.checkpoint(
                f"create.env.variable.{gh.owner}.{gh.repo}.{name}.{var_name}",
                functools.partial(set_variable, client, f"{by_id}/variables", var_name, value),
            )

        secrets: Mapping[str, str] = inputs.get("secrets") or {}
        if secrets:
            key = client.get(f"{by_id}/secrets/public-key")
            for secret_name, value in secrets.items():
                sealed = {
                    "encrypted_value": seal_secret(key["key"], value),
                    "key_id": key["key_id"],
                }
                ctx.checkpoint(
                    f"create.or.update.env.secret.{gh.owner}.{gh.repo}.{name}.{secret_name}",
                    functools.partial(
                        client.put, f"{by_id}/secrets/{segment(secret_name)}", sealed
                    ),
                )
            ctx.logger.info(f"Set {len(secrets)} secret(s) on environment {name}")

    return build_action("github:environment:create", handler, supports_dry_run=False)


def _id_of(gh: GithubRepo, path: str) -> int:
    return int(gh.client.get(path)["id"])


def _add_policy(
    ctx: ActionContext, gh: GithubRepo, env: str, kind: str, name: str, pattern: str
) -> None:
    def create() -> None:
        gh.client.post(f"{env}/deployment-branch-policies", {"name": pattern, "type": kind})

    ctx.checkpoint(
        f"create.deployment.branch.policy.{kind}.{gh.owner}.{gh.repo}.{name}.{pattern}", create
    )


def _reviewers(
    ctx: ActionContext, gh: GithubRepo, refs: Any, lookup: EntityLookup | None
) -> list[dict[str, Any]]:
    if not refs:
        return []
    if lookup is None:
        ctx.logger.warn(
            f"Skipping reviewers {', '.join(refs)}: no catalog is available to look them up"
        )
        return []
    found: list[dict[str, Any]] = []
    for ref in refs:
        try:
            entity = lookup(str(parse_entity_ref(ref)))
        except InputError as exc:
            ctx.logger.warn(f"Skipping reviewer {ref}: {exc.message}")
            continue
        if entity is None:
            ctx.logger.warn(f"Skipping reviewer {ref}: not found in the catalog")
            continue
        kind = str(entity.get("kind", ""))
        login = str((entity.get("metadata") or {}).get("name", ""))
        try:
            if kind == "User":
                user_id = ctx.checkpoint(
                    f"get.user.{login}", functools.partial(_id_of, gh, f"/users/{segment(login)}")
                )
                found.append({"type": "User", "id": user_id})
            elif kind == "Group":
                team_path = f"/orgs/{segment(gh.owner)}/teams/{segment(login)}"
                team_id = ctx.checkpoint(
                    f"get.team.{login}", functools.partial(_id_of, gh, team_path)
                )
                found.append({"type": "Team", "id": team_id})
            else:
                ctx.logger.warn(f"Skipping reviewer {ref}: a {kind} is neither a User nor a Group")
        except GithubError as exc:
            what = "User" if kind == "User" else "Team"
            ctx.logger.error(f"{what} not found: {login}, {exc.message}")
    return found

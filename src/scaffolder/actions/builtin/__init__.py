"""The builtin actions of Backstage's scaffolder backend, one module each.

`create_builtin_actions` returns them in the order Backstage 4.3.0 registers them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from scaffolder.actions.base import TemplateAction
from scaffolder.actions.builtin.aws_cloudformation_deploy import (
    create_aws_cloudformation_deploy_action,
)
from scaffolder.actions.builtin.aws_codepipeline_create import (
    create_aws_codepipeline_create_action,
)
from scaffolder.actions.builtin.aws_ecr_create import create_aws_ecr_create_action
from scaffolder.actions.builtin.aws_iam_github_oidc_role import (
    create_aws_iam_github_oidc_role_action,
)
from scaffolder.actions.builtin.aws_secretsmanager_create_secret import (
    create_aws_secretsmanager_create_secret_action,
)
from scaffolder.actions.builtin.aws_ssm_put_parameter import create_aws_ssm_put_parameter_action
from scaffolder.actions.builtin.catalog_fetch import create_catalog_fetch_action
from scaffolder.actions.builtin.catalog_register import create_catalog_register_action
from scaffolder.actions.builtin.catalog_write import create_catalog_write_action
from scaffolder.actions.builtin.debug_log import create_debug_log_action
from scaffolder.actions.builtin.debug_wait import create_debug_wait_action
from scaffolder.actions.builtin.fetch_cookiecutter import (
    TrustedTemplates,
    create_fetch_cookiecutter_action,
)
from scaffolder.actions.builtin.fetch_plain import create_fetch_plain_action
from scaffolder.actions.builtin.fetch_plain_file import create_fetch_plain_file_action
from scaffolder.actions.builtin.fetch_template import create_fetch_template_action
from scaffolder.actions.builtin.fetch_template_file import create_fetch_template_file_action
from scaffolder.actions.builtin.fs_delete import create_fs_delete_action
from scaffolder.actions.builtin.fs_readdir import create_fs_readdir_action
from scaffolder.actions.builtin.fs_rename import create_fs_rename_action
from scaffolder.actions.builtin.github_actions_dispatch import (
    create_github_actions_dispatch_action,
)
from scaffolder.actions.builtin.github_environment_create import (
    EntityLookup,
    create_github_environment_create_action,
)
from scaffolder.actions.builtin.github_repo_create import create_github_repo_create_action
from scaffolder.actions.builtin.github_repo_push import create_github_repo_push_action
from scaffolder.actions.builtin.github_webhook import create_github_webhook_action
from scaffolder.actions.builtin.publish_git import create_publish_git_action
from scaffolder.actions.builtin.publish_github import create_publish_github_action
from scaffolder.actions.builtin.publish_github_pull_request import (
    create_publish_github_pull_request_action,
)
from scaffolder.actions.builtin.quality_lint import create_quality_lint_action
from scaffolder.catalog.catalog_client import CatalogClient
from scaffolder.integrations.aws import AwsClients
from scaffolder.integrations.cookiecutter import CookiecutterPool
from scaffolder.integrations.github_auth import GithubConnector
from scaffolder.integrations.scm import ScmIntegrations
from scaffolder.tasks.templating import Templater

__all__ = [
    "create_aws_cloudformation_deploy_action",
    "create_aws_codepipeline_create_action",
    "create_aws_ecr_create_action",
    "create_aws_iam_github_oidc_role_action",
    "create_aws_secretsmanager_create_secret_action",
    "create_aws_ssm_put_parameter_action",
    "create_builtin_actions",
    "create_catalog_fetch_action",
    "create_catalog_register_action",
    "create_catalog_write_action",
    "create_debug_log_action",
    "create_debug_wait_action",
    "create_fetch_cookiecutter_action",
    "create_fetch_plain_action",
    "create_fetch_plain_file_action",
    "create_fetch_template_action",
    "create_fetch_template_file_action",
    "create_fs_delete_action",
    "create_fs_readdir_action",
    "create_fs_rename_action",
    "create_github_actions",
    "create_publish_git_action",
    "create_quality_lint_action",
]


def create_builtin_actions(
    *,
    templater: Templater,
    cookiecutter_pool: CookiecutterPool | None = None,
    trusted_templates: Sequence[str] = (),
    git_hosts: Collection[str] = ("github.com",),
    git_file_roots: Sequence[Path] = (),
    scm_integrations: ScmIntegrations | None = None,
    config: Mapping[str, Any] | None = None,
    aws: AwsClients | None = None,
    github: GithubConnector | None = None,
    entity_lookup: EntityLookup | None = None,
    catalog: CatalogClient | None = None,
) -> list[TemplateAction]:
    """The builtin actions this package implements.

    Args:
        templater: renders skeleton paths and contents for the ``fetch:template*`` actions.
        cookiecutter_pool: renders for ``fetch:cookiecutter``; without one that action (which
            upstream ships in a module of its own) is left out.
        trusted_templates: ``scaffolder.trustedTemplates``, for ``fetch:cookiecutter``.
        git_hosts: hosts ``fetch:cookiecutter`` may fetch ``https://`` git URLs from.
        git_file_roots: local git hosts ``fetch:cookiecutter`` may fetch ``file://`` URLs from.
        scm_integrations: the configured ``integrations``; with them, ``publish:git`` (ours)
            publishes to their plain git hosts.
        config: the whole configuration (``scaffolder.defaultAuthor`` and
            ``scaffolder.defaultCommitMessage`` for the publishers).
        aws: the AWS client factory for the ``aws:*`` actions (default: built from
            ``config``'s ``aws`` section). They are registered even when AWS is not
            configured, and then skip themselves with a log line.
        github: connects to the configured GitHub hosts; with it, the GitHub actions
            (upstream's github module) are included.
        entity_lookup: finds catalog entities (``github:environment:create`` reviewers).
        catalog: the catalog ``catalog:register`` and ``catalog:fetch`` use (the embedded one,
            or a Backstage catalog); without one they are left out.
    """
    catalog_actions = []
    if catalog is not None:
        catalog_actions = [
            create_catalog_register_action(
                catalog=catalog, integrations=scm_integrations or ScmIntegrations()
            ),
            create_catalog_fetch_action(catalog=catalog),
        ]
    actions = [
        create_fetch_plain_action(),
        create_fetch_plain_file_action(),
        create_fetch_template_action(templater=templater),
        create_fetch_template_file_action(templater=templater),
        create_debug_log_action(),
        create_debug_wait_action(),
        *catalog_actions,
        create_catalog_write_action(),
        create_fs_delete_action(),
        create_fs_rename_action(),
        create_fs_readdir_action(),
        # Ours: the template quality gate (`scaffolder lint`) as a step.
        create_quality_lint_action(),
    ]
    if cookiecutter_pool is not None:
        actions.append(
            create_fetch_cookiecutter_action(
                pool=cookiecutter_pool,
                trusted=TrustedTemplates.from_config(trusted_templates),
                git_hosts=git_hosts,
                git_file_roots=git_file_roots,
            )
        )
    if scm_integrations is not None:
        actions.append(create_publish_git_action(integrations=scm_integrations, config=config))
    aws = aws if aws is not None else AwsClients.from_config(config or {})
    actions += [
        create_aws_ecr_create_action(aws=aws),
        create_aws_iam_github_oidc_role_action(aws=aws),
        create_aws_cloudformation_deploy_action(aws=aws),
        create_aws_ssm_put_parameter_action(aws=aws),
        create_aws_secretsmanager_create_secret_action(aws=aws),
        create_aws_codepipeline_create_action(aws=aws),
    ]
    if github is not None:
        actions += create_github_actions(github=github, config=config, entity_lookup=entity_lookup)
    return actions


def create_github_actions(
    *,
    github: GithubConnector,
    config: Mapping[str, Any] | None = None,
    entity_lookup: EntityLookup | None = None,
) -> list[TemplateAction]:
    """The GitHub actions, in the order upstream's github module registers them."""
    return [
        create_github_actions_dispatch_action(github=github),
        create_github_environment_create_action(github=github, entity_lookup=entity_lookup),
        create_github_repo_create_action(github=github),
        create_github_repo_push_action(github=github, config=config),
        create_github_webhook_action(github=github),
        create_publish_github_action(github=github, config=config),
        create_publish_github_pull_request_action(github=github, config=config),
    ]

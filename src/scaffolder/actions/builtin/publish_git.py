"""``publish:git`` (ours): publish the workspace as a new repository on a plain git host.

The host is an ``integrations.git[]`` entry (`scaffolder.integrations.scm`), named by the
RepoUrlPicker value ``<host>?owner=<o>&repo=<r>``; the repository is
``<baseUrl>/<o>/<r>.git``. On a ``file:`` host (a directory of bare repositories, the local
git host of ``make serve``) the action creates it with ``git init --bare``; on an ``ssh://``
or ``https://`` host it must exist already (or the server creates it on push). Either way a
repository that has any ref is not ours to overwrite: `ConflictError`, nothing pushed.

Retries are idempotent. Creating the repository and pushing to it each run inside a step
checkpoint: a retry of the task recognises the repository its earlier attempt created (no
conflict; a push that may have landed before the attempt died is replaced), and a push that
completed is not repeated (the same ``commitHash`` is output).

Outputs: ``remoteUrl`` (the clone URL, ``file:///.../o/r.git`` on the local host),
``repoContentsUrl`` (``<remoteUrl>/blob/<branch>``, the shape ``publish:github`` outputs, so
``${{ steps.publish.output.repoContentsUrl }}/catalog-info.yaml`` reads the same for both),
``commitHash``. In a dry run nothing is created or pushed: the action logs what it would do
and outputs the two URLs (no ``commitHash``: there is no commit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.errors import ConflictError, InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations.git_push import (
    check_branch,
    check_push_url,
    create_bare_repository,
    init_commit_push,
    list_remote_refs,
    resolve_author,
    resolve_commit_message,
)
from scaffolder.integrations.scm import GitHostIntegration, ScmIntegrations

ACTION_ID = "publish:git"
DEFAULT_BRANCH = "main"

INPUT_SCHEMA: Mapping[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["repoUrl"],
    "additionalProperties": False,
    "properties": {
        "repoUrl": {
            "type": "string",
            "description": (
                "Accepts the format `localhost?owner=owner&repo=reponame`, where the host is an "
                "integrations.git host and `reponame` the new repository"
            ),
        },
        "description": {
            "type": "string",
            "description": "Repository description (a bare repository's description file)",
        },
        "defaultBranch": {
            "type": "string",
            "description": "The branch to push. The default value is 'main'",
            "default": DEFAULT_BRANCH,
        },
        "sourcePath": {
            "type": "string",
            "description": (
                "Path within the workspace that will be used as the repository root. If "
                "omitted, the entire workspace will be published as the repository."
            ),
        },
        "gitCommitMessage": {
            "type": "string",
            "description": (
                "Sets the commit message on the repository. The default value is `initial commit`"
            ),
            "default": "initial commit",
        },
        "gitAuthorName": {
            "type": "string",
            "description": (
                "Sets the author and committer name for the commit. The default value is "
                "`Scaffolder`"
            ),
            "default": "Scaffolder",
        },
        "gitAuthorEmail": {
            "type": "string",
            "description": "Sets the author and committer email for the commit.",
        },
    },
}

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "remoteUrl": {"type": "string", "description": "The clone URL of the repository"},
        "repoContentsUrl": {
            "type": "string",
            "description": "A URL to the root of the repository at the pushed branch",
        },
        "commitHash": {
            "type": "string",
            "description": "The git commit hash of the initial commit (not set in a dry run)",
        },
    },
}

_EXAMPLE = """\
steps:
  - id: publish
    name: Publish
    action: publish:git
    input:
      repoUrl: localhost?owner=platform&repo=payments
      description: The payments service
      defaultBranch: main
"""


def create_publish_git_action(
    *, integrations: ScmIntegrations, config: Mapping[str, Any] | None = None
) -> TemplateAction:
    """Build ``publish:git``.

    Args:
        integrations: the configured SCM integrations; the action publishes to their
            ``integrations.git[]`` hosts.
        config: the whole configuration, for ``scaffolder.defaultAuthor`` and
            ``scaffolder.defaultCommitMessage``.
    """
    settings = config or {}

    def handler(ctx: ActionContext) -> None:
        location = integrations.resolve_repo_url(ctx.input["repoUrl"])
        host = location.integration
        if not isinstance(host, GitHostIntegration):
            raise InputError(
                f"No integration for host {location.host} in integrations.git: publish:git "
                "publishes to plain git hosts (use publish:github for GitHub)"
            )
        owner, repo = location.owner, location.repo
        branch = check_branch(str(ctx.input.get("defaultBranch") or DEFAULT_BRANCH))
        source_input = ctx.input.get("sourcePath")
        source = ctx.resolve_path(str(source_input or "./"), input_name="sourcePath")
        if not source.is_dir():
            raise InputError(f"Invalid input 'sourcePath' ({source_input!r}): not a directory")
        remote_url = host.remote_url(owner, repo)
        check_push_url(remote_url)
        repository = _local_repository(host, owner, repo)
        author = resolve_author(
            name=ctx.input.get("gitAuthorName"),
            email=ctx.input.get("gitAuthorEmail"),
            config=settings,
            user=ctx.user,
        )
        message = resolve_commit_message(ctx.input.get("gitCommitMessage"), settings)
        shown_source = "the workspace" if not source_input else f"{source_input!r}"
        contents_url = f"{remote_url}/blob/{branch}"

        if ctx.is_dry_run:
            creating = f", creating {repository} if it is missing" if repository else ""
            ctx.logger.info(
                f"Dry run: would push {shown_source} to {remote_url} (branch {branch}, by "
                f"{author.name} <{author.email}>){creating}"
            )
            ctx.output("remoteUrl", remote_url)
            ctx.output("repoContentsUrl", contents_url)
            return

        attempted: list[bool] = []

        def create() -> dict[str, Any]:
            attempted.append(True)
            created = False
            if repository is not None:
                created = create_bare_repository(
                    repository,
                    branch=branch,
                    description=ctx.input.get("description"),
                    cancel=ctx.signal,
                )
            if created:
                ctx.logger.info(f"Created bare repository {repository}")
                return {"created": True}
            try:
                refs = list_remote_refs(
                    remote_url, auth_header=host.auth_header(), cancel=ctx.signal
                )
            except TaskCancelledError:
                raise
            except ScaffolderError as exc:
                if repository is None:
                    raise
                raise ConflictError(
                    f"Cannot publish to {remote_url}: {repository} exists and is not a git "
                    "repository"
                ) from exc
            if refs:
                raise ConflictError(
                    f"Repository {owner}/{repo} already exists on {host.host} and is not "
                    f"empty ({remote_url})"
                )
            ctx.logger.info(f"Repository {remote_url} exists and is empty; pushing to it")
            return {"created": False}

        key = f"publish.git.{host.host}.{owner}.{repo}"
        state = ctx.checkpoint(f"{key}.create", create)
        retry_of_ours = not attempted and bool(state.get("created"))
        if retry_of_ours:
            ctx.logger.info(f"Repository {remote_url} was created by an earlier attempt")

        def push() -> dict[str, str]:
            ctx.logger.info(f"Pushing {shown_source} to {remote_url} (branch {branch})")
            commit = init_commit_push(
                source,
                remote_url,
                branch=branch,
                message=message,
                author=author,
                auth_header=host.auth_header(),
                cancel=ctx.signal,
                force=retry_of_ours,
            )
            return {"commitHash": commit}

        pushed = ctx.checkpoint(f"{key}.push.{branch}", push)
        commit = str(pushed["commitHash"])
        ctx.logger.info(f"Published {commit[:12]} to {remote_url} (branch {branch})")
        ctx.output("remoteUrl", remote_url)
        ctx.output("repoContentsUrl", contents_url)
        ctx.output("commitHash", commit)

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=(
            "Initializes a git repository of the workspace (or sourcePath) and publishes it to "
            "a plain git host (integrations.git), creating the bare repository on a file: host."
        ),
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(ActionExample(description="Publish to the local git host", example=_EXAMPLE),),
        supports_dry_run=True,
    )


def _local_repository(host: GitHostIntegration, owner: str, repo: str) -> Path | None:
    """The bare repository's directory on a ``file:`` host, checked to stay under it."""
    path = host.repository_path(owner, repo)
    root = host.local_root
    if path is None or root is None:
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise InputError(f"Refusing to publish outside the git host's directory: {path}")
    return path

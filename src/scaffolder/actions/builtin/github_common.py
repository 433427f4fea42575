"""What the GitHub actions share: connecting, creating and configuring a repository, pushing
the workspace, and protecting its default branch (upstream's ``helpers`` and ``gitHelpers``).

Every GitHub failure arrives here as a `GithubError` (a subclass of our semantic errors); the
helpers decide, as upstream does, which failures are only warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scaffolder.actions.base import ActionContext
from scaffolder.errors import InputError, NotFoundError
from scaffolder.integrations.git import check_remote_url
from scaffolder.integrations.git_push import PUSH_SCHEMES, init_commit_push, resolve_author
from scaffolder.integrations.github import (
    GithubClient,
    GithubConflictError,
    GithubError,
    GithubNotFoundError,
    Sleep,
    seal_secret,
    segment,
)
from scaffolder.integrations.github_auth import GithubConnector
from scaffolder.integrations.scm import basic_auth_header

#: The user name an access token is pushed with over HTTPS.
PUSH_USERNAME = "x-access-token"
#: GitHub is eventually consistent: a branch just pushed may not be protectable yet.
BRANCH_NOT_FOUND_RETRY_SECONDS = 0.6

_PRO_ONLY = "Upgrade to GitHub Pro or make this repository public to enable this feature"


@dataclass(frozen=True, kw_only=True)
class GithubRepo:
    """A step's repository: where it is, and a client authenticated for it."""

    host: str
    owner: str
    repo: str
    client: GithubClient
    token: str = field(repr=False)
    #: How this step waits (the connector's sleep, ended by a cancel of the task).
    sleep: Sleep = field(repr=False, compare=False)

    @property
    def path(self) -> str:
        """``/repos/<owner>/<repo>``, for REST paths."""
        return f"/repos/{segment(self.owner)}/{segment(self.repo)}"

    @property
    def push_auth_header(self) -> str:
        """The ``http.extraHeader`` that pushes with the token (never put in a URL)."""
        return basic_auth_header(PUSH_USERNAME, self.token)


def connect(ctx: ActionContext, github: GithubConnector) -> GithubRepo:
    """Resolve the step's ``repoUrl`` and token (CONTRACT §7.6) and connect.

    The client's waits (rate limits, backoff) end at once when the task is cancelled.
    """
    location = github.locate(str(ctx.input.get("repoUrl", "")))
    token = ctx.input.get("token")
    sleep = github.sleeper(ctx.signal.wait)
    client, resolved = github.connect(
        location.host,
        location.owner,
        location.repo,
        token if isinstance(token, str) else None,
        sleep=sleep,
    )
    return GithubRepo(
        host=location.host,
        owner=location.owner,
        repo=location.repo,
        client=client,
        token=resolved.token,
        sleep=sleep,
    )


def rewrap(exc: GithubError, message: str) -> GithubError:
    """The same kind of error with a message of ours in front of GitHub's."""
    return type(exc)(
        f"{message}, {exc.github_message or exc.message}",
        github_status=exc.github_status,
        github_message=exc.github_message,
        cause=exc,
    )


def entity_ref_to_name(name: str) -> str:
    """``user:default/alice`` -> ``alice`` (upstream's ``entityRefToName``)."""
    return name.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


# --- creating a repository -------------------------------------------------------------------


def create_repository(
    ctx: ActionContext,
    gh: GithubRepo,
    *,
    default_branch: str | None,
    auto_init: bool | None = None,
) -> tuple[dict[str, str], bool]:
    """Create the repository (inside the step's checkpoint), then configure it.

    Creation runs in the checkpoint ``create.github.repo.<owner>.<repo>``: on a retry of the
    same task the stored result is used, so a repository this task created is not reported
    as a conflict. Any other existing repository is a `GithubConflictError` and the caller
    pushes nothing. Access, collaborators, topics, variables, secrets and the rest are set
    after the checkpoint (they are idempotent), so a retry after a failure there completes
    them.

    Returns:
        ``{"remoteUrl": clone_url, "repoContentsUrl": <html_url>/blob/<branch>}``
        (``repoContentsUrl`` only when ``default_branch`` is given), and whether this call
        created the repository (False: an earlier attempt of the task did).
    """
    inputs = ctx.input
    owner, repo, client = gh.owner, gh.repo, gh.client
    owner_type = str(client.get(f"/users/{segment(owner)}").get("type") or "User")
    access = inputs.get("access")
    if isinstance(access, str) and access.startswith(f"{owner}/"):
        _validate_access_team(client, access)

    created_now: list[bool] = []

    def create() -> dict[str, str]:
        created_now.append(True)
        body = _repo_body(inputs, repo, auto_init)
        if owner_type == "Organization":
            body["visibility"] = inputs.get("repoVisibility", "private")
            body["custom_properties"] = inputs.get("customProperties")
            path = f"/orgs/{segment(owner)}/repos"
        else:
            path = "/user/repos"
        try:
            created = client.post(path, _drop_none(body))
        except GithubError as exc:
            if exc.github_message.startswith("Resource not accessible by integration"):
                ctx.logger.warn(
                    "The GitHub app or token provided may not have the required permissions "
                    f"to create the {owner_type} repository {owner}/{repo}."
                )
            raise rewrap(
                exc, f"Failed to create the {owner_type} repository {owner}/{repo}"
            ) from exc
        ctx.logger.info(f"Created the {owner_type} repository {created.get('html_url')}")
        result = {"remoteUrl": str(created.get("clone_url"))}
        if default_branch is not None:
            result["repoContentsUrl"] = f"{created.get('html_url')}/blob/{default_branch}"
        return result

    stored: dict[str, str] = ctx.checkpoint(f"create.github.repo.{owner}.{repo}", create)
    if not created_now:
        ctx.logger.info(f"Repository {owner}/{repo} was created by an earlier attempt of this task")
    _configure_repository(ctx, gh)
    return stored, bool(created_now)


def _repo_body(inputs: Mapping[str, Any], repo: str, auto_init: bool | None) -> dict[str, Any]:
    return {
        "name": repo,
        "private": inputs.get("repoVisibility", "private") == "private",
        "description": inputs.get("description"),
        "homepage": inputs.get("homepage"),
        "delete_branch_on_merge": inputs.get("deleteBranchOnMerge", False),
        "allow_merge_commit": inputs.get("allowMergeCommit", True),
        "allow_squash_merge": inputs.get("allowSquashMerge", True),
        "squash_merge_commit_title": inputs.get("squashMergeCommitTitle", "COMMIT_OR_PR_TITLE"),
        "squash_merge_commit_message": inputs.get("squashMergeCommitMessage", "COMMIT_MESSAGES"),
        "allow_rebase_merge": inputs.get("allowRebaseMerge", True),
        "allow_auto_merge": inputs.get("allowAutoMerge", False),
        "allow_update_branch": inputs.get("allowUpdateBranch", False),
        "has_projects": inputs.get("hasProjects"),
        "has_wiki": inputs.get("hasWiki"),
        "has_issues": inputs.get("hasIssues"),
        "auto_init": auto_init,
    }


def _validate_access_team(client: GithubClient, access: str) -> None:
    org, _, team = access.partition("/")
    try:
        client.get(f"/orgs/{segment(org)}/teams/{segment(team)}")
    except GithubNotFoundError as exc:
        raise NotFoundError(
            f"Received 'Not Found' from the API; one of org: {org} or team: {team} was not "
            "found within GitHub.",
            cause=exc,
        ) from exc
    except GithubError:
        pass  # upstream only stops on "Not Found"; anything else shows up at creation


def _configure_repository(ctx: ActionContext, gh: GithubRepo) -> None:
    inputs, logger = ctx.input, ctx.logger
    owner, client, repo_path = gh.owner, gh.client, gh.path
    access = inputs.get("access")
    if isinstance(access, str) and access.startswith(f"{owner}/"):
        team = access.split("/")[1]
        client.put(
            f"/orgs/{segment(owner)}/teams/{segment(team)}{repo_path}", {"permission": "admin"}
        )
    elif isinstance(access, str) and access and access != owner:
        client.put(f"{repo_path}/collaborators/{segment(access)}", {"permission": "admin"})

    for collaborator in inputs.get("collaborators") or []:
        permission = collaborator.get("access")
        try:
            if "user" in collaborator:
                name = entity_ref_to_name(collaborator["user"])
                client.put(f"{repo_path}/collaborators/{segment(name)}", {"permission": permission})
            elif "team" in collaborator:
                name = entity_ref_to_name(collaborator["team"])
                client.put(
                    f"/orgs/{segment(owner)}/teams/{segment(name)}{repo_path}",
                    {"permission": permission},
                )
        except GithubError as exc:
            shown = collaborator.get("user", collaborator.get("team"))
            logger.warn(f"Skipping {permission} access for {shown}, {exc.message}")

    topics = inputs.get("topics")
    if topics is not None:
        try:
            client.put(f"{repo_path}/topics", {"names": [t.lower() for t in topics]})
        except GithubError as exc:
            logger.warn(f"Skipping topics {' '.join(topics)}, {exc.message}")

    for name, value in (inputs.get("repoVariables") or {}).items():
        set_variable(client, f"{repo_path}/actions/variables", name, value)

    secrets: Mapping[str, str] | None = inputs.get("secrets")
    if secrets:
        key = client.get(f"{repo_path}/actions/secrets/public-key")
        for name, value in secrets.items():
            client.put(
                f"{repo_path}/actions/secrets/{segment(name)}",
                {"encrypted_value": seal_secret(key["key"], value), "key_id": key["key_id"]},
            )
        logger.info(f"Set {len(secrets)} repository secret(s) on {gh.owner}/{gh.repo}")

    oidc = inputs.get("oidcCustomization")
    if oidc is not None:
        client.put(
            f"{repo_path}/actions/oidc/customization/sub",
            _drop_none(
                {
                    "use_default": oidc.get("useDefault"),
                    "include_claim_keys": oidc.get("includeClaimKeys"),
                }
            ),
        )
    if inputs.get("subscribe"):
        client.put(f"{repo_path}/subscription", {"subscribed": True, "ignored": False})
    workflow_access = inputs.get("workflowAccess")
    if workflow_access:
        client.put(f"{repo_path}/actions/permissions/access", {"access_level": workflow_access})


def set_variable(client: GithubClient, collection: str, name: str, value: str) -> None:
    """Create an Actions variable, or update it when it exists (a retried step)."""
    try:
        client.post(collection, {"name": name, "value": value})
    except GithubConflictError:
        client.patch(f"{collection}/{segment(name)}", {"name": name, "value": value})


# --- pushing and protecting ------------------------------------------------------------------


def push_workspace(
    ctx: ActionContext,
    github: GithubConnector,
    gh: GithubRepo,
    remote_url: str,
    *,
    branch: str,
    message: str,
    config: Mapping[str, Any],
    force: bool = False,
) -> str:
    """Commit the workspace (or ``sourcePath``) as one commit and push it; the commit sha.

    The token travels only as an ``http.extraHeader`` to an ``https`` remote. Only the
    schemes the connector allows are pushed to (``https``; tests add ``file``).

    Args:
        force: replace the branch if it exists (a retry pushing to the repository its
            earlier attempt created).
    """
    scheme = check_remote_url(remote_url, schemes=PUSH_SCHEMES, what="clone URL")
    if scheme not in github.push_schemes:
        raise InputError(
            f"GitHub gave the clone URL {remote_url!r}; only "
            f"{', '.join(sorted(github.push_schemes))} clone URLs are pushed to"
        )
    source_path = ctx.input.get("sourcePath")
    source = (
        ctx.resolve_path(source_path, input_name="sourcePath")
        if isinstance(source_path, str) and source_path
        else ctx.workspace_path
    )
    author = resolve_author(
        name=ctx.input.get("gitAuthorName"),
        email=ctx.input.get("gitAuthorEmail"),
        config=config,
        user=ctx.user,
    )
    sha = init_commit_push(
        source,
        remote_url,
        branch=branch,
        message=message,
        author=author,
        auth_header=gh.push_auth_header if scheme in ("https", "http") else None,
        cancel=ctx.signal,
        force=force,
    )
    ctx.logger.info(f"Pushed commit {sha} to {remote_url} ({branch})")
    return sha


def protect_default_branch(ctx: ActionContext, gh: GithubRepo, branch: str) -> None:
    """Protect ``branch`` as the inputs ask; a failure is only a warning (as upstream)."""
    if not ctx.input.get("protectDefaultBranch", True):
        return
    try:
        try:
            _protect_once(ctx, gh, branch)
        except GithubError as exc:
            if "Branch not found" not in exc.message:
                raise
            gh.sleep(BRANCH_NOT_FOUND_RETRY_SECONDS)
            _protect_once(ctx, gh, branch)
    except GithubError as exc:
        ctx.logger.warn(f"Skipping: default branch protection on '{gh.repo}', {exc.message}")


def _protect_once(ctx: ActionContext, gh: GithubRepo, branch: str) -> None:
    inputs = ctx.input
    reviews: dict[str, Any] = {
        "required_approving_review_count": inputs.get("requiredApprovingReviewCount", 1),
        "require_code_owner_reviews": inputs.get("requireCodeOwnerReviews", False),
        "dismiss_stale_reviews": inputs.get("dismissStaleReviews", False),
        "require_last_push_approval": inputs.get("requireLastPushApproval", False),
    }
    if inputs.get("bypassPullRequestAllowances") is not None:
        reviews["bypass_pull_request_allowances"] = inputs["bypassPullRequestAllowances"]
    body = {
        "required_status_checks": {
            "strict": inputs.get("requireBranchesToBeUpToDate", True),
            "contexts": inputs.get("requiredStatusCheckContexts", []),
        },
        "restrictions": inputs.get("restrictions"),
        "enforce_admins": inputs.get("protectEnforceAdmins", True),
        "required_pull_request_reviews": reviews,
        "required_conversation_resolution": inputs.get("requiredConversationResolution", False),
        "required_linear_history": inputs.get("requiredLinearHistory", False),
        "block_creations": False,
    }
    protection = f"{gh.path}/branches/{segment(branch)}/protection"
    try:
        gh.client.put(protection, body)
        if inputs.get("requiredCommitSigning"):
            gh.client.post(f"{protection}/required_signatures")
    except GithubError as exc:
        if _PRO_ONLY not in exc.message:
            raise
        ctx.logger.warn(
            "Branch protection was not enabled as it requires GitHub Pro for private repositories"
        )
        return
    ctx.logger.info(f"Protected branch {branch} of {gh.owner}/{gh.repo}")


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    """Leave out keys whose value is None, as octokit leaves out ``undefined``."""
    return {k: v for k, v in body.items() if v is not None}

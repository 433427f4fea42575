"""The ``github`` autocomplete provider (CONTRACT §2.11): what the frontend pickers list.

Resources: ``repositoriesWithOwner`` (``owner/repo`` of every repository the token's user can
reach), ``owners`` (the user's organizations) and ``branches`` (of ``context.owner`` /
``context.repository``). ``context.host`` picks the GitHub host (default ``github.com``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from scaffolder.errors import InputError
from scaffolder.integrations.github import segment
from scaffolder.integrations.github_auth import GithubConnector
from scaffolder.integrations.scm import GITHUB_HOST

#: ``(resource, token, context) -> results``; each result is ``{"id", "title"?}``.
AutocompleteHandler = Callable[[str, str, Mapping[str, str]], list[dict[str, str]]]


def create_github_autocomplete(github: GithubConnector) -> AutocompleteHandler:
    """The handler of provider ``github``, calling GitHub with the user's token."""

    def handle(resource: str, token: str, context: Mapping[str, str]) -> list[dict[str, str]]:
        host = context.get("host") or GITHUB_HOST
        client, _ = github.connect(host, None, None, token)
        if resource == "repositoriesWithOwner":
            return [{"id": str(r["full_name"])} for r in client.paginate("/user/repos")]
        if resource == "branches":
            owner, repo = context.get("owner"), context.get("repository")
            if not owner or not repo:
                raise InputError("Missing owner and/or repository context parameter")
            path = f"/repos/{segment(owner)}/{segment(repo)}/branches"
            return [{"id": str(b["name"])} for b in client.paginate(path)]
        if resource == "owners":
            return [{"id": str(o["login"])} for o in client.paginate("/user/orgs")]
        raise InputError(f"Invalid resource: {resource}")

    return handle

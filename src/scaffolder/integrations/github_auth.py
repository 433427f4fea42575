"""Which token a GitHub call uses, and GitHub App installation tokens.

The order (CONTRACT §7.6): the step's ``token`` input; else, unless
``scaffolder.requireScmUserCredentials`` is set, the integration's ``token``; else an
installation token of a GitHub App configured for the host (``apps[]``: ``appId``,
``privateKey``, optionally ``installationId`` and ``allowedInstallationOwners``).

An App authenticates as itself with a short JWT (RS256, signed with its private key), finds
its installation on the repository owner's account, and exchanges the JWT for an
installation token that lasts an hour. Tokens are cached until a minute before they expire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt

from scaffolder.errors import InputError, TaskCancelledError
from scaffolder.integrations.github import (
    Clock,
    GithubClient,
    GithubError,
    RetryPolicy,
    Sleep,
    cancellable_sleep,
    segment,
)
from scaffolder.integrations.scm import (
    GithubApp,
    GithubIntegration,
    RepoLocation,
    ScmIntegrations,
)

#: Seconds an App JWT is valid (GitHub allows at most 10 minutes).
APP_JWT_LIFETIME_SECONDS = 540
#: Seconds the JWT's ``iat`` is set in the past, for clock drift (GitHub's advice).
APP_JWT_BACKDATE_SECONDS = 60
#: An installation token is renewed this many seconds before it expires.
TOKEN_RENEW_MARGIN_SECONDS = 60.0

_DOCS = "https://backstage.io/docs/auth/github/provider"


@dataclass(frozen=True, kw_only=True)
class GithubToken:
    """A token to use and where it came from (``input``, ``integration`` or ``app``)."""

    token: str = field(repr=False)
    source: str

    @property
    def header(self) -> str:
        """The ``Authorization`` header value for the REST API."""
        return f"token {self.token}"


class GithubConnector:
    """Resolves the token of a GitHub call (minting App installation tokens) and connects.

    Args:
        integrations: the configured SCM integrations (GitHub hosts and credentials).
        require_user_credentials: ``scaffolder.requireScmUserCredentials``.
        retry: retry policy of the App's own calls.
        sleep: how the App's calls wait between tries.
        clock: wall-clock seconds (JWT times, token expiry, rate-limit resets).
        client_factory: builds clients (`GithubClient`'s keyword arguments).
        push_schemes: clone URL schemes the publish actions push to: ``https`` (tests of
            ours add ``file`` for a local bare repository).
    """

    def __init__(
        self,
        integrations: ScmIntegrations,
        *,
        require_user_credentials: bool = False,
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        client_factory: Callable[..., GithubClient] = GithubClient,
        push_schemes: Collection[str] = ("https",),
    ) -> None:
        self.push_schemes = frozenset(push_schemes)
        self.integrations = integrations
        self._hosts = {h.host.lower(): h for h in integrations.github}
        self.require_user_credentials = require_user_credentials
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, int], tuple[str, float]] = {}

    def host(self, host: str) -> GithubIntegration:
        """The integration of ``host``; `InputError` ``No integration for host <host>``."""
        found = self._hosts.get(host.lower())
        if found is None:
            raise InputError(f"No integration for host {host}")
        return found

    @classmethod
    def from_config(
        cls, integrations: ScmIntegrations, config: Mapping[str, Any]
    ) -> GithubConnector:
        """A connector for ``integrations`` honouring ``scaffolder.requireScmUserCredentials``."""
        scaffolder = config.get("scaffolder")
        required = (
            scaffolder.get("requireScmUserCredentials") if isinstance(scaffolder, Mapping) else None
        )
        return cls(integrations, require_user_credentials=required is True)

    def locate(self, repo_url: str) -> RepoLocation:
        """Resolve a RepoUrlPicker value that must name a repository on a GitHub host.

        Raises:
            InputError: the value is malformed (``parseRepoUrl``'s messages), or its host is
                not a GitHub integration (``No integration for host <host>``).
        """
        location = self.integrations.resolve_repo_url(repo_url)
        if not isinstance(location.integration, GithubIntegration):
            raise InputError(f"No integration for host {location.host}")
        return location

    def api_base_url(self, host: str) -> str:
        """The REST API root of ``host``.

        Raises:
            InputError: no integration for the host, or an Enterprise host configured
                without ``apiBaseUrl``.
        """
        integration = self.host(host)
        if not integration.api_base_url:
            raise InputError(
                f"The integrations.github entry for host {integration.host} has no apiBaseUrl"
            )
        return integration.api_base_url

    def hosts(self) -> Sequence[GithubIntegration]:
        """Every configured GitHub host."""
        return tuple(self._hosts.values())

    def token_for(
        self, host: str, owner: str | None, repo: str | None, provided: str | None
    ) -> GithubToken:
        """The token for a call on ``owner/repo`` at ``host``.

        Raises:
            InputError: no integration for the host; user credentials required but not
                given; no owner/repo to pick integration credentials by; nothing configured.
        """
        integration = self.host(host)
        if provided:
            return GithubToken(token=provided, source="input")
        if self.require_user_credentials:
            raise InputError(
                f"No user credentials provided for host {host}, but "
                "scaffolder.requireScmUserCredentials is enabled"
            )
        if not owner or not repo:
            raise InputError(
                "No owner and/or repo provided, which is required if a token is not provided"
            )
        if integration.token:
            return GithubToken(token=integration.token, source="integration")
        for app in integration.apps:
            if app.allowed_installation_owners and owner.lower() not in {
                o.lower() for o in app.allowed_installation_owners
            }:
                continue
            token = self._installation_token(integration, app, owner)
            if token is not None:
                return GithubToken(token=token, source="app")
        raise InputError(
            f"No token available for host: {host}, with owner {owner}, and repo {repo}. "
            f"Make sure GitHub auth is configured correctly. See {_DOCS} for more details."
        )

    def connect(
        self,
        host: str,
        owner: str | None,
        repo: str | None,
        provided: str | None,
        *,
        sleep: Sleep | None = None,
    ) -> tuple[GithubClient, GithubToken]:
        """A client for ``host`` authenticated with `token_for`'s token, and that token.

        Args:
            host: the GitHub host (``github.com``).
            owner: the repository owner.
            repo: the repository name.
            provided: the step's ``token`` input, if any.
            sleep: how this client waits between tries (a task passes a cancellable one).
        """
        api_base_url = self.api_base_url(host)
        token = self.token_for(host, owner, repo, provided)
        client = self._client_factory(
            api_base_url=api_base_url,
            auth=token.header,
            retry=self._retry,
            sleep=sleep or self._sleep,
            clock=self._clock,
        )
        return client, token

    @property
    def clock(self) -> Clock:
        """The wall clock this connector (and its clients) read."""
        return self._clock

    def sleeper(self, wait: Callable[[float], bool] | None = None) -> Sleep:
        """How a task's GitHub work waits: this connector's sleep, ended by a cancel.

        Args:
            wait: the task's `CancelSignal.wait` (sleeps up to the seconds given; True when
                cancelled), or None outside a task.
        """
        if wait is None:
            return self._sleep
        if self._sleep is time.sleep:
            return cancellable_sleep(wait)
        inner = self._sleep

        def sleep(seconds: float) -> None:
            if wait(0):
                raise TaskCancelledError("The task has been cancelled")
            inner(seconds)

        return sleep

    # --- GitHub Apps -------------------------------------------------------------------------

    def _installation_token(
        self, integration: GithubIntegration, app: GithubApp, owner: str
    ) -> str | None:
        client = self._client_factory(
            api_base_url=self.api_base_url(integration.host),
            retry=self._retry,
            sleep=self._sleep,
            clock=self._clock,
        )
        bearer = f"Bearer {self._app_jwt(app)}"
        installation_id = app.installation_id
        if installation_id is None:
            installation_id = self._find_installation(client, bearer, owner)
            if installation_id is None:
                return None
        key = (integration.host, app.app_id, installation_id)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[1] - TOKEN_RENEW_MARGIN_SECONDS > self._clock():
                return cached[0]
        try:
            answer = client.request(
                "POST",
                f"/app/installations/{segment(installation_id)}/access_tokens",
                auth=bearer,
            ).data
        except GithubError as exc:
            raise type(exc)(
                f"GitHub App {app.app_id} could not get an installation token for "
                f"{owner}: {exc.message}",
                github_status=exc.github_status,
                github_message=exc.github_message,
            ) from exc
        token = str((answer or {}).get("token") or "")
        if not token:
            return None
        expires = _expiry((answer or {}).get("expires_at"), self._clock() + 3600.0)
        with self._lock:
            self._cache[key] = (token, expires)
        return token

    def _find_installation(self, client: GithubClient, bearer: str, owner: str) -> int | None:
        page = 1
        while True:
            answer = client.request(
                "GET", "/app/installations", params={"per_page": 100, "page": page}, auth=bearer
            ).data
            items: list[Mapping[str, Any]] = answer if isinstance(answer, list) else []
            for installation in items:
                account = installation.get("account") or {}
                if str(account.get("login", "")).lower() == owner.lower():
                    return int(installation["id"])
            if len(items) < 100:
                return None
            page += 1

    def _app_jwt(self, app: GithubApp) -> str:
        now = int(self._clock())
        payload = {
            "iat": now - APP_JWT_BACKDATE_SECONDS,
            "exp": now + APP_JWT_LIFETIME_SECONDS,
            "iss": app.app_id,
        }
        try:
            return jwt.encode(payload, app.private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise InputError(
                f"The private key of GitHub App {app.app_id} cannot sign a JWT: "
                f"{type(exc).__name__}"
            ) from exc


def _expiry(value: Any, default: float) -> float:
    if not isinstance(value, str):
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default

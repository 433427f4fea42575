"""A small GitHub REST client: retries, rate limits and error translation in one place.

Every GitHub call the actions make goes through `GithubClient.request`. It sends the token in
the ``Authorization`` header (never in a URL), retries what is worth retrying, and turns every
failure into one of our errors, so nothing above ``integrations/`` sees a ``requests``
exception or has to read a status code:

============================  =========================================================
GitHub answers                what the caller gets
============================  =========================================================
401                           `GithubCredentialsError` (an `InputError`): fix the token
403 / 429 rate limit          waits for ``retry-after`` / ``x-ratelimit-reset`` and
                              retries (bounded); then `GithubUnavailableError`
403 otherwise                 `GithubForbiddenError` (a `NotAllowedError`)
404                           `GithubNotFoundError` (a `NotFoundError`)
409, 422 "... already exists" `GithubConflictError` (a `ConflictError`)
422 otherwise, other 4xx      `GithubInputError` (an `InputError`)
502/503/504, connection lost  retried with backoff; then `GithubUnavailableError`
============================  =========================================================

Each carries ``github_status`` and ``github_message`` (GitHub's own ``message``) for callers
that react to a particular answer, as upstream does for "Branch not found".
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from nacl.exceptions import CryptoError
from nacl.public import PublicKey, SealedBox

from scaffolder.errors import (
    ConflictError,
    InputError,
    NotAllowedError,
    NotFoundError,
    ScaffolderError,
    TaskCancelledError,
)

#: GitHub's REST API on github.com; GitHub Enterprise uses ``https://<host>/api/v3``.
DEFAULT_API_BASE_URL = "https://api.github.com"
#: The REST API version every request asks for.
API_VERSION = "2022-11-28"
#: Seconds before one request is abandoned (Backstage's octokit uses 60 s).
REQUEST_TIMEOUT_SECONDS = 60.0
#: Page size for list endpoints.
PAGE_SIZE = 100
#: The most pages `GithubClient.paginate` follows (100 x 100 items).
MAX_PAGES = 100
#: How long GitHub asks us to wait on a secondary rate limit that names no time.
SECONDARY_RATE_LIMIT_WAIT_SECONDS = 60.0

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({502, 503, 504})
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard a request tries before its failure is reported.

    Attributes:
        attempts: tries in all, the first included.
        backoff_seconds: the first wait after a lost connection or a 502/503/504; doubled
            after each further failure.
        max_wait_seconds: the longest wait honoured for one rate limit. A limit that resets
            later than this fails at once with the time it resets, rather than holding a
            task for up to an hour.
    """

    attempts: int = 4
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 60.0


# --- errors ----------------------------------------------------------------------------------


class GithubError(ScaffolderError):
    """A failed GitHub request; subclasses say what kind of failure it was.

    Attributes:
        github_status: the HTTP status (None when GitHub could not be reached).
        github_message: GitHub's ``message`` (plus its ``errors[].message``), or the reason
            the request could not be made.
    """

    def __init__(
        self,
        message: str,
        *,
        github_status: int | None = None,
        github_message: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, cause=cause)
        self.github_status = github_status
        self.github_message = github_message


class GithubCredentialsError(GithubError, InputError):
    """GitHub rejected the token (401): a configuration or input problem, not ours."""


class GithubForbiddenError(GithubError, NotAllowedError):
    """The token may not do this (403 other than a rate limit)."""


class GithubNotFoundError(GithubError, NotFoundError):
    """No such repository, user, team, workflow or branch (or no access to it) (404)."""


class GithubConflictError(GithubError, ConflictError):
    """The thing to create already exists (409, or 422 ``already exists``)."""


class GithubInputError(GithubError, InputError):
    """GitHub refused what we sent (422 validation failed, other 4xx)."""


class GithubUnavailableError(GithubError):
    """GitHub could not be reached, kept failing, or kept us rate-limited (HTTP 503)."""

    name = "ServiceUnavailableError"


# --- responses -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GithubResponse:
    """A successful answer: status, parsed JSON body (None when empty) and headers."""

    status: int
    data: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def cancellable_sleep(wait: Callable[[float], bool]) -> Sleep:
    """A `Sleep` that ends early, raising, when ``wait`` reports a cancel.

    Args:
        wait: sleeps up to the given seconds; True when woken by a cancel
            (`CancelSignal.wait`).
    """

    def sleep(seconds: float) -> None:
        if wait(seconds):
            raise TaskCancelledError("The task has been cancelled")

    return sleep


def seal_secret(public_key: str, value: str) -> str:
    """Encrypt ``value`` for GitHub with a repository's or environment's public key.

    GitHub only accepts secrets as a libsodium sealed box (X25519 + XSalsa20-Poly1305) of the
    value, base64-encoded, made with the key from ``.../secrets/public-key``.

    Raises:
        GithubInputError: the key is not a base64 32-byte Curve25519 public key.
    """
    try:
        key = PublicKey(base64.b64decode(public_key, validate=True))
        sealed = SealedBox(key).encrypt(value.encode("utf-8"))
    except (binascii.Error, ValueError, TypeError, CryptoError) as exc:
        raise GithubInputError(
            "GitHub sent a public key that cannot seal secrets", github_message=str(exc)
        ) from exc
    return base64.b64encode(sealed).decode("ascii")


def segment(value: str | int) -> str:
    """One URL path segment, percent-encoded (``/`` included)."""
    return quote(str(value), safe="")


class GithubClient:
    """One authenticated connection to one GitHub API.

    Args:
        api_base_url: ``https://api.github.com`` or a GitHub Enterprise ``.../api/v3``.
        auth: the ``Authorization`` header value (``token <t>`` or ``Bearer <jwt>``), or
            None for anonymous calls.
        retry: the retry policy.
        sleep: how to wait between tries (injected by tests; cancellable in tasks).
        clock: wall-clock seconds, to read ``x-ratelimit-reset``.
        session: the HTTP session (a new one by default).
        timeout: seconds before one request is abandoned.
    """

    def __init__(
        self,
        *,
        api_base_url: str = DEFAULT_API_BASE_URL,
        auth: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        session: requests.Session | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.api_base_url = api_base_url.rstrip("/")
        self.host = urlsplit(self.api_base_url).hostname or self.api_base_url
        self._auth = auth
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._session = session or requests.Session()
        self._timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"GithubClient({self.api_base_url!r})"

    # --- verbs -------------------------------------------------------------------------------

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path``; the JSON body."""
        return self.request("GET", path, params=params).data

    def post(self, path: str, body: Any = None) -> Any:
        """POST ``body`` as JSON; the JSON body of the answer (None when empty)."""
        return self.request("POST", path, json=body).data

    def put(self, path: str, body: Any = None) -> Any:
        """PUT ``body`` as JSON; the JSON body of the answer (None when empty)."""
        return self.request("PUT", path, json=body).data

    def patch(self, path: str, body: Any = None) -> Any:
        """PATCH ``body`` as JSON; the JSON body of the answer."""
        return self.request("PATCH", path, json=body).data

    def exists(self, path: str, *, params: Mapping[str, Any] | None = None) -> bool:
        """Whether GET ``path`` finds something (404 is False; other failures raise)."""
        try:
            self.request("GET", path, params=params)
        except GithubNotFoundError:
            return False
        return True

    def paginate(self, path: str, *, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"``.

        Endpoints that wrap their list (``{"total_count", "workflow_runs": [...]}``) are
        unwrapped to the list.
        """
        return list(self.iter_pages(path, params=params))

    def iter_pages(self, path: str, *, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """The items of a list endpoint, one page at a time (see `paginate`)."""
        query: dict[str, Any] | None = {"per_page": PAGE_SIZE, **(params or {})}
        url: str = path
        for _ in range(MAX_PAGES):
            response = self.request("GET", url, params=query)
            yield from _items(response.data)
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            if match is None:
                return
            url, query = match.group(1), None  # the next link carries the whole query

    # --- the one request path ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: str | None = None,
    ) -> GithubResponse:
        """Send one request, retrying as the policy allows; a `GithubError` on failure.

        Args:
            method: the HTTP method.
            path: an API path (``/repos/o/r``) or an absolute URL on the same API.
            json: the JSON body, if any.
            params: query parameters.
            auth: an ``Authorization`` value for this request only (an App's JWT).
        """
        url = path if path.startswith(("http://", "https://")) else self.api_base_url + path
        shown = f"{method} {urlsplit(url).path}"
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "scaffolder",
        }
        authorization = auth or self._auth
        if authorization:
            headers["Authorization"] = authorization
        policy = self._retry
        backoff = policy.backoff_seconds
        attempt = 0
        while True:
            attempt += 1
            last_try = attempt >= policy.attempts
            try:
                response = self._session.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=method in _IDEMPOTENT,
                )
            except requests.ConnectionError as exc:
                # A POST whose connection dropped may have been applied; a retried create
                # then meets "already exists", which is reported as such.
                if last_try:
                    raise GithubUnavailableError(
                        f"Could not reach GitHub at {self.api_base_url} ({shown}): {_reason(exc)}",
                        github_message=_reason(exc),
                        cause=exc,
                    ) from exc
                self._sleep(backoff)
                backoff *= 2
                continue
            except requests.RequestException as exc:
                raise GithubUnavailableError(
                    f"GitHub request {shown} to {self.api_base_url} failed: {_reason(exc)}",
                    github_message=_reason(exc),
                    cause=exc,
                ) from exc

            status = response.status_code
            if status < 400:
                return GithubResponse(
                    status=status,
                    data=_json_or_none(response),
                    headers={k.lower(): v for k, v in response.headers.items()},
                )
            message = _github_message(response)
            if _is_rate_limited(response, message):
                wait = self._rate_limit_wait(response)
                if last_try or wait > policy.max_wait_seconds:
                    raise GithubUnavailableError(
                        f"GitHub API rate limit exceeded for {self.host} ({shown}): "
                        f"{message}{self._reset_note(response)}",
                        github_status=status,
                        github_message=message,
                    )
                self._sleep(wait)
                continue
            if status in _RETRY_STATUSES and method in _IDEMPOTENT and not last_try:
                self._sleep(backoff)
                backoff *= 2
                continue
            raise self._error(status, message, shown, response)

    # --- helpers -----------------------------------------------------------------------------

    def _rate_limit_wait(self, response: requests.Response) -> float:
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            return max(_retry_after_seconds(retry_after, self._clock), 0.0)
        reset = response.headers.get("x-ratelimit-reset")
        if response.headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            try:
                # One second past the reset: GitHub's clock and ours are not the same clock.
                return max(float(reset) - self._clock() + 1.0, 0.0)
            except ValueError:
                pass
        return SECONDARY_RATE_LIMIT_WAIT_SECONDS

    def _reset_note(self, response: requests.Response) -> str:
        reset = response.headers.get("x-ratelimit-reset")
        if reset is None:
            return ""
        try:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(reset)))
        except (ValueError, OverflowError):
            return ""
        return f" (the limit resets at {when})"

    def _error(
        self, status: int, message: str, shown: str, response: requests.Response
    ) -> GithubError:
        if status == 401:
            return GithubCredentialsError(
                f"GitHub at {self.host} rejected the credentials ({status} {message}) for "
                f"{shown}; check the token input or the integrations.github credentials",
                github_status=status,
                github_message=message,
            )
        text = f"GitHub {shown} failed with {status}: {message}"
        if status == 403:
            return GithubForbiddenError(text, github_status=status, github_message=message)
        if status == 404:
            return GithubNotFoundError(text, github_status=status, github_message=message)
        if status == 409 or (status == 422 and "already exists" in message.lower()):
            return GithubConflictError(text, github_status=status, github_message=message)
        if 400 <= status < 500:
            return GithubInputError(text, github_status=status, github_message=message)
        return GithubUnavailableError(text, github_status=status, github_message=message)


# --- module helpers --------------------------------------------------------------------------


def _items(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list):
                return value
    return []


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _github_message(response: requests.Response) -> str:
    """GitHub's ``message`` and any ``errors[].message`` (or codes), in one line."""
    body = _json_or_none(response)
    if not isinstance(body, dict):
        return response.reason or f"HTTP {response.status_code}"
    message = str(body.get("message") or response.reason or f"HTTP {response.status_code}")
    details: list[str] = []
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            detail = item.get("message") or " ".join(
                str(item[k]) for k in ("resource", "field", "code") if item.get(k)
            )
            if detail:
                details.append(str(detail))
        elif isinstance(item, str):
            details.append(item)
    return f"{message} ({'; '.join(details)})" if details else message


def _is_rate_limited(response: requests.Response, message: str) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    headers = response.headers
    return (
        headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in headers
        or "rate limit" in message.lower()
    )


def _retry_after_seconds(value: str, clock: Clock) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return SECONDARY_RATE_LIMIT_WAIT_SECONDS
    return when.timestamp() - clock()


def _reason(exc: BaseException) -> str:
    """A short reason for a transport failure, without the URL's query string."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return re.sub(r"\?[^\s'\"]*", "", text)

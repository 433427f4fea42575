"""Reading location targets: ``file`` paths and globs, and ``url`` targets over HTTPS.

A URL is read only when an integration covers its host (GitHub: ``integrations.github[]``,
``github.com`` always) or when ``backend.reading.allow`` lists it; anything else is refused
before a byte is fetched, and so is every redirect hop that leaves the allowed hosts (CONTRACT
§9.6). GitHub ``blob``/``tree`` URLs are fetched from the contents API with the integration's
token, or from the raw host without one. Bodies are capped at `parsing.MAX_FILE_BYTES` and
every read has a deadline. ``requests`` errors never leave this module: they become
`ReadError` with upstream's wording.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from scaffolder.catalog.parsing import MAX_FILE_BYTES

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 5
GITHUB_HOST = "github.com"
_GITHUB_PATH = re.compile(
    r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+)/(?P<type>blob|tree|raw|edit)/(?P<rest>.+)$"
)


class ReadError(Exception):
    """A read that failed; ``name`` is the upstream error name (``NotFoundError``, ``Error``)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass(frozen=True, kw_only=True)
class ReadFile:
    """One file a target named: its own location target (a path or URL) and its bytes, or
    why it could not be read (the other files of a glob are still read)."""

    target: str
    data: bytes = b""
    error: ReadError | None = None


@dataclass(frozen=True, kw_only=True)
class AllowRule:
    """A ``backend.reading.allow`` entry: ``host`` (``*.`` wildcard, optional port), paths."""

    host: str
    paths: tuple[str, ...] | None = None

    def allows(self, url: str) -> bool:
        """Whether ``url`` matches this rule (FetchUrlReader's predicate)."""
        parts = urlsplit(url)
        hostname, _, port = self.host.partition(":")
        actual = parts.hostname or ""
        if hostname.startswith("*."):
            if not actual.endswith(hostname[1:]):
                return False
        elif actual != hostname.lower():
            return False
        if not _port_ok(port, parts.port, parts.scheme):
            return False
        if self.paths is None:
            return True
        target = os.path.normpath(parts.path or "/")
        return any(
            target == allowed
            or target.startswith(allowed if allowed.endswith("/") else allowed + "/")
            for allowed in self.paths
        )


def _port_ok(rule: str, port: int | None, scheme: str) -> bool:
    if not rule:
        return port is None
    low, _, high = rule.partition("-")
    lo, hi = int(low), int(high or low)
    actual = port if port is not None else {"http": 80, "https": 443}.get(scheme)
    return actual is not None and lo <= actual <= hi


@dataclass(frozen=True, kw_only=True)
class GithubIntegration:
    """An ``integrations.github[]`` entry."""

    host: str = GITHUB_HOST
    token: str | None = None
    api_base_url: str | None = None
    raw_base_url: str | None = None

    def fetch_url(self, url: str) -> tuple[str, dict[str, str]]:
        """The URL and headers that read a ``blob``/``tree`` URL (``getGithubFileFetchUrl``).

        Raises:
            ReadError: when the URL does not name a file in a repository.
        """
        match = _GITHUB_PATH.match(urlsplit(url).path)
        if not match or "/" not in match["rest"]:
            raise ReadError(
                "Error", f"Incorrect URL: {url}, Error: Invalid GitHub URL or file path"
            )
        ref, _, path = match["rest"].partition("/")
        if any(part in ("..", ".") for part in path.split("/")):
            raise ReadError(
                "Error",
                f"Incorrect URL: {url}, Error: Invalid SCM URL: path traversal is not allowed "
                "in the URL",
            )
        headers = {"Accept": "application/vnd.github.v3.raw"}
        if self.api_base_url and (self.token or not self.raw_base_url):
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            return (
                f"{self.api_base_url}/repos/{match['owner']}/{match['repo']}/contents/"
                f"{path}?ref={quote(ref, safe='')}",
                headers,
            )
        return f"{self.raw_base_url}/{match['owner']}/{match['repo']}/{ref}/{path}", headers

    def edit_url(self, url: str) -> str:
        """``/blob/`` (or ``/tree/``) becomes ``/edit/``."""
        return _replace_github_type(url, "edit")

    def resolve(self, url: str, base: str) -> str:
        """A target resolved against ``base``, as a ``/tree/`` URL (GithubIntegration)."""
        return _replace_github_type(resolve_url(url, base), "tree")


def _replace_github_type(url: str, kind: str) -> str:
    return re.sub(
        r"//([^/]+)/([^/]+)/([^/]+)/(blob|tree|edit)/", rf"//\1/\2/\3/{kind}/", url, count=1
    )


def resolve_url(url: str, base: str) -> str:
    """``defaultScmResolveUrl``: an absolute URL as is, else joined to ``base``."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", url):
        return url
    joined = urljoin(base, url)
    query = urlsplit(base).query
    joined = joined.split("?", 1)[0].split("#", 1)[0]
    return f"{joined}?{query}" if query else joined


def integrations_from_config(config: Mapping[str, Any]) -> list[GithubIntegration]:
    """``integrations.github[]``, plus the default ``github.com`` when it is not listed."""
    found: list[GithubIntegration] = []
    section = config.get("integrations") or {}
    for entry in (section.get("github") if isinstance(section, Mapping) else None) or []:
        if not isinstance(entry, Mapping) or not entry.get("host"):
            continue
        host = str(entry["host"])
        default_api = "https://api.github.com" if host == GITHUB_HOST else None
        default_raw = "https://raw.githubusercontent.com" if host == GITHUB_HOST else None
        token = entry.get("token")
        found.append(
            GithubIntegration(
                host=host,
                token=str(token) if token else None,
                api_base_url=str(entry.get("apiBaseUrl") or default_api or "").rstrip("/") or None,
                raw_base_url=str(entry.get("rawBaseUrl") or default_raw or "").rstrip("/") or None,
            )
        )
    if not any(i.host == GITHUB_HOST for i in found):
        found.append(
            GithubIntegration(
                api_base_url="https://api.github.com",
                raw_base_url="https://raw.githubusercontent.com",
            )
        )
    return found


def allow_rules_from_config(config: Mapping[str, Any]) -> list[AllowRule]:
    """``backend.reading.allow``."""
    backend = config.get("backend") or {}
    reading = backend.get("reading") if isinstance(backend, Mapping) else None
    rules = []
    for entry in (reading.get("allow") if isinstance(reading, Mapping) else None) or []:
        if isinstance(entry, Mapping) and entry.get("host"):
            paths = entry.get("paths")
            rules.append(
                AllowRule(
                    host=str(entry["host"]),
                    paths=tuple(str(p) for p in paths) if isinstance(paths, list) else None,
                )
            )
    return rules


@dataclass(kw_only=True)
class UrlReader:
    """Reads ``url`` and ``file`` targets (Backstage's UrlReader plus FileReaderProcessor)."""

    allow: Sequence[AllowRule] = ()
    github: Sequence[GithubIntegration] = field(
        default_factory=lambda: integrations_from_config({})
    )
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_bytes: int = MAX_FILE_BYTES
    session: requests.Session = field(default_factory=requests.Session)
    #: Reads ``file://`` URLs (files in the local git host's repositories,
    #: `scaffolder.catalog.git_reader`); without it they are refused.
    file_url_reader: Callable[[str], bytes] | None = None

    def integration_for(self, url: str) -> GithubIntegration | None:
        """The SCM integration whose host serves ``url``."""
        try:
            netloc = urlsplit(url).netloc
        except ValueError:
            return None
        return next((i for i in self.github if i.host == netloc), None)

    def _allowed(self, url: str) -> bool:
        return any(rule.allows(url) for rule in self.allow)

    def search(self, url: str) -> list[ReadFile]:
        """The files a ``url`` target names (no globs): one file, or none when it is 404.

        Raises:
            ReadError: when the URL is not allowed or the read fails otherwise.
        """
        if re.search(r"[*?]", urlsplit(url).path):
            raise ReadError("Error", "Unsupported search pattern URL")
        try:
            return [ReadFile(target=url, data=self.read_url(url))]
        except ReadError as exc:
            if exc.name == "NotFoundError":
                return []
            raise

    def read_url(self, url: str) -> bytes:
        """The body at ``url``.

        Raises:
            ReadError: ``NotAllowedError`` before any request to a host that is not allowed,
                ``NotFoundError`` for a 404, ``Error`` for anything else.
        """
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            scheme = ""
        if scheme == "file" and self.file_url_reader is not None:
            return self.file_url_reader(url)
        if scheme not in ("http", "https"):
            raise ReadError("NotAllowedError", _not_allowed(url))
        integration = self.integration_for(url)
        if integration is not None:
            fetch_url, headers = integration.fetch_url(url)
            return self._fetch(fetch_url, headers, follow=True, failed="Request failed for")
        if not self._allowed(url):
            raise ReadError("NotAllowedError", _not_allowed(url))
        return self._fetch(url, {}, follow=False, failed="could not read")

    def _fetch(self, url: str, headers: Mapping[str, str], *, follow: bool, failed: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        current = url
        for _ in range(MAX_REDIRECTS):
            try:
                response = self.session.get(
                    current,
                    headers=dict(headers),
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=follow,
                )
            except requests.RequestException as exc:
                raise ReadError("Error", f"Unable to read {current}, {exc}") from exc
            with response:
                if 200 <= response.status_code < 300:
                    return self._body(response, current, deadline)
                location = response.headers.get("location")
                if follow or response.status_code not in (301, 302, 307, 308) or not location:
                    message = f"{failed} {current}, {response.status_code} {response.reason}"
                    name = "NotFoundError" if response.status_code == 404 else "Error"
                    raise ReadError(name, message)
            current = urljoin(current, location)
            if not self._allowed(current):
                raise ReadError(
                    "Error",
                    f"URL not allowed by backend.reading.allow configuration: {current}",
                )
        raise ReadError("Error", f"Too many redirects (max {MAX_REDIRECTS}) when reading {url}")

    def _body(self, response: requests.Response, url: str, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise ReadError(
                        "Error",
                        f"Unable to read {url}, the response is larger than {self.max_bytes} bytes",
                    )
                if time.monotonic() > deadline:
                    raise ReadError(
                        "Error", f"Unable to read {url}, timed out after {self.timeout:g} s"
                    )
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise ReadError("Error", f"Unable to read {url}, {exc}") from exc
        return b"".join(chunks)

    def read_files(self, target: str) -> list[ReadFile]:
        """The files a ``file`` target (a path or a glob) names, sorted; one that cannot be
        read (or is too large) carries its error instead of its bytes."""
        if glob.has_magic(target):
            paths = sorted(glob.glob(target, recursive=True))
        else:
            paths = [target] if Path(target).exists() else []
        files = []
        for path in paths:
            if Path(path).is_dir():
                continue
            normalized = os.path.normpath(path)
            try:
                size = Path(path).stat().st_size
                if size > self.max_bytes:
                    error = ReadError(
                        "Error",
                        f"file {target} could not be read, {path} is larger than "
                        f"{self.max_bytes} bytes",
                    )
                    files.append(ReadFile(target=normalized, error=error))
                    continue
                data = Path(path).read_bytes()
            except OSError as exc:
                error = ReadError("Error", f"file {target} could not be read, {exc}")
                files.append(ReadFile(target=normalized, error=error))
                continue
            files.append(ReadFile(target=normalized, data=data))
        return files


def _not_allowed(url: str) -> str:
    return (
        f"Reading from '{url}' is not allowed. You may need to configure an integration for "
        "the target host, or add it to the configured list of allowed hosts at "
        "'backend.reading.allow'"
    )

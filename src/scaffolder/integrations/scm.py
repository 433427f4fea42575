"""SCM integrations as Backstage configures them, and where a RepoUrlPicker value points.

Two lists under ``integrations`` are read into frozen records::

    integrations:
      github:                     # Backstage's own shape
        - host: github.com
          token: ${GITHUB_TOKEN}
        - host: ghe.example.com
          apiBaseUrl: https://ghe.example.com/api/v3
          apps:
            - { appId: 1, privateKey: ${GH_APP_KEY}, installationId: 42 }
      git:                        # ours: plain git hosts
        - { host: localhost, baseUrl: file:./var/git }             # bare repositories
        - { host: git.example.com, baseUrl: ssh://git@git.example.com/srv }
        - { host: code.example.com, baseUrl: https://code.example.com, token: ${GIT_TOKEN} }

A RepoUrlPicker value ``<host>?owner=<o>&repo=<r>`` (CONTRACT §5.5) resolves through them:
on a plain git host the repository is ``<baseUrl>/<o>/<r>.git``. A ``file:`` base URL may be
relative (``file:./var/git``, resolved against the working directory when the configuration
is read) or absolute (``file:///srv/git``, or ``file://${PWD}/var/git``).

The other integration kinds Backstage knows (``gitlab``, ``azure``, ...) are recorded by host
only, so that ``parseRepoUrl`` accepts their hosts as Backstage does; nothing publishes there.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from scaffolder.errors import InputError

GITHUB_HOST: Final = "github.com"
GITHUB_API_BASE_URL: Final = "https://api.github.com"
GITHUB_RAW_BASE_URL: Final = "https://raw.githubusercontent.com"
#: The user name a plain git host's token is sent with (HTTP Basic), unless configured.
DEFAULT_TOKEN_USERNAME: Final = "x-access-token"  # noqa: S105 - a user name
#: Integration kinds only ``parseRepoUrl`` knows about (no publisher of ours uses them).
OTHER_KINDS: Final = ("gitlab", "bitbucketCloud", "bitbucketServer", "azure", "gitea")
#: Schemes a plain git host's ``baseUrl`` may use (``http`` on loopback only).
GIT_HOST_SCHEMES: Final = ("file", "https", "ssh", "http")

_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")
#: An owner or repository name: one path segment that no git or shell could misread.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_JS_WHITESPACE = frozenset(" \t\n\v\f\r\u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff")


@dataclass(frozen=True, kw_only=True)
class GithubApp:
    """A GitHub App of an ``integrations.github[]`` entry (Backstage's ``apps[]``).

    Attributes:
        app_id: the App's id.
        private_key: its PEM private key (never shown in ``repr``).
        installation_id: the installation to act as; None to look it up by repository owner.
        allowed_installation_owners: owners the App may act for (empty: any).
    """

    app_id: str
    private_key: str = field(repr=False)
    installation_id: int | None = None
    allowed_installation_owners: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GithubIntegration:
    """An ``integrations.github[]`` entry: a GitHub or GitHub Enterprise host.

    Attributes:
        host: ``github.com`` or the Enterprise host (with ``:port`` if not 443).
        api_base_url: REST API root; ``https://api.github.com`` for github.com, else only as
            configured (Backstage's rule).
        raw_base_url: raw file root, the same way.
        token: a personal access token (never shown in ``repr``).
        apps: GitHub Apps, used when there is no token.
    """

    host: str
    api_base_url: str | None = None
    raw_base_url: str | None = None
    token: str | None = field(default=None, repr=False)
    apps: tuple[GithubApp, ...] = ()

    kind: ClassVar[str] = "github"

    def clone_url(self, owner: str, repo: str) -> str:
        """The HTTPS clone URL of ``owner/repo`` (no credentials)."""
        return f"https://{self.host}/{owner}/{repo}.git"


@dataclass(frozen=True, kw_only=True)
class GitHostIntegration:
    """An ``integrations.git[]`` entry: a plain git host.

    Attributes:
        host: the name a RepoUrlPicker value uses (``localhost``).
        base_url: where repositories live, normalised without a trailing slash:
            ``file:///abs/dir`` (a directory of bare repositories), ``ssh://...``, or
            ``https://...`` (``http://`` on loopback only).
        token: sent to an ``https`` host as HTTP Basic credentials in a header, never in a URL
            (never shown in ``repr``).
        username: the Basic user name for ``token``.
    """

    host: str
    base_url: str
    token: str | None = field(default=None, repr=False)
    username: str = DEFAULT_TOKEN_USERNAME

    kind: ClassVar[str] = "git"

    @property
    def scheme(self) -> str:
        """``file``, ``https``, ``ssh`` or ``http``."""
        return urlsplit(self.base_url).scheme

    @property
    def local_root(self) -> Path | None:
        """The directory of a ``file:`` host; None for a remote host."""
        if self.scheme != "file":
            return None
        return Path(unquote(urlsplit(self.base_url).path))

    def remote_url(self, owner: str, repo: str) -> str:
        """The clone URL of ``owner/repo`` on this host: ``<baseUrl>/<owner>/<repo>.git``."""
        return f"{self.base_url}/{quote(owner)}/{quote(repo)}.git"

    def repository_path(self, owner: str, repo: str) -> Path | None:
        """The bare repository's directory on a ``file:`` host."""
        root = self.local_root
        return None if root is None else root / owner / f"{repo}.git"

    def auth_header(self) -> str | None:
        """The ``http.extraHeader`` value that carries ``token``, or None."""
        if self.token is None:
            return None
        return basic_auth_header(self.username, self.token)


ScmIntegration = GithubIntegration | GitHostIntegration


@dataclass(frozen=True, kw_only=True)
class RepoLocation:
    """A RepoUrlPicker value resolved through the configured integrations."""

    host: str
    owner: str
    repo: str
    integration: ScmIntegration


@dataclass(frozen=True, kw_only=True)
class ScmIntegrations:
    """Every configured SCM integration.

    Attributes:
        github: ``integrations.github[]``, plus ``github.com`` when it is not listed
            (Backstage's default).
        git: ``integrations.git[]``.
        other_hosts: hosts of the other kinds, to their kind.
    """

    github: tuple[GithubIntegration, ...] = (
        GithubIntegration(
            host=GITHUB_HOST, api_base_url=GITHUB_API_BASE_URL, raw_base_url=GITHUB_RAW_BASE_URL
        ),
    )
    git: tuple[GitHostIntegration, ...] = ()
    other_hosts: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, cwd: Path | None = None) -> ScmIntegrations:
        """Read ``integrations`` from a merged configuration tree.

        Args:
            config: the whole configuration.
            cwd: what a relative ``file:`` base URL is resolved against (default: the
                working directory).

        Raises:
            InputError: an entry is malformed; the message names its key.
        """
        section = config.get("integrations") or {}
        if not isinstance(section, Mapping):
            raise InputError("Config key 'integrations' must be a mapping")
        github = [
            _github_entry(entry, f"integrations.github[{i}]")
            for i, entry in enumerate(_entries(section, "github"))
        ]
        if not any(g.host == GITHUB_HOST for g in github):
            github.append(cls().github[0])
        git = [
            _git_entry(entry, f"integrations.git[{i}]", cwd or Path.cwd())
            for i, entry in enumerate(_entries(section, "git"))
        ]
        other: dict[str, str] = {}
        for kind in OTHER_KINDS:
            for entry in _entries(section, kind):
                if isinstance(entry, Mapping) and entry.get("host"):
                    other[str(entry["host"]).lower()] = kind
        return cls(github=tuple(github), git=tuple(git), other_hosts=other)

    def scm_hosts(self) -> dict[str, str]:
        """Host to integration kind, for ``parseRepoUrl`` and ``projectSlug``."""
        hosts: dict[str, str] = {GITHUB_HOST: "github"}
        hosts.update({g.host: "github" for g in self.github})
        hosts.update(self.other_hosts)
        hosts.update({g.host: "git" for g in self.git})
        return hosts

    def local_roots(self) -> tuple[Path, ...]:
        """Directories of the ``file:`` git hosts (``file://`` fetches are allowed below)."""
        return tuple(root for g in self.git if (root := g.local_root) is not None)

    def find(self, host: str) -> ScmIntegration | None:
        """The integration of ``host`` (case-insensitive); a git host wins over GitHub."""
        wanted = host.lower()
        for git in self.git:
            if git.host.lower() == wanted:
                return git
        for github in self.github:
            if github.host.lower() == wanted:
                return github
        return None

    def resolve_repo_url(self, value: Any) -> RepoLocation:
        """Resolve a RepoUrlPicker value, ``<host>?owner=<o>&repo=<r>``.

        The value is read as ``parseRepoUrl`` reads it (``https://<value>``, query parameters
        trimmed of ``/``) and fails with its messages; owner and repository must then be
        single path segments of letters, digits, ``.``, ``_`` and ``-``.

        Raises:
            InputError: unparsable, unknown host, a host of a kind we do not publish to, a
                missing or unsafe owner or repository.
        """
        text = value if isinstance(value, str) else str(value)
        try:
            parts = urlsplit(f"https://{text}")
            hostname, port = parts.hostname, parts.port
        except ValueError:
            hostname = port = None
        if not hostname or any(char in _JS_WHITESPACE for char in hostname):
            raise InputError(
                f"Invalid repo URL passed to publisher, got {text}, TypeError: Invalid URL"
            )
        host = hostname if port in (None, 443) else f"{hostname}:{port}"
        integration = self.find(host)
        if integration is None:
            if host in self.other_hosts:
                raise InputError(f"No integration for host {host}")
            raise InputError(
                f"No matching integration configuration for host {host}, "
                "please check your integrations config"
            )
        query: dict[str, str] = {}
        for key, item in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(key, item)
        for name in ("repo", "owner"):
            if not query.get(name):
                shown = f"https://{host}{_url_encode(parts.path) or '/'}"
                if parts.query:
                    shown += f"?{_url_encode(parts.query)}"
                raise InputError(f"Invalid repo URL passed to publisher: {shown}, missing {name}")
        owner, repo = query["owner"].strip("/"), query["repo"].strip("/")
        if not _NAME.fullmatch(owner) or owner in (".", ".."):
            raise InputError(f"Invalid repository owner provided in repoUrl: {owner!r}")
        if not _NAME.fullmatch(repo) or repo in (".", "..") or repo.lower().endswith(".git"):
            raise InputError(f"Invalid repository name provided in repoUrl: {repo!r}")
        return RepoLocation(host=host, owner=owner, repo=repo, integration=integration)


def basic_auth_header(username: str, token: str) -> str:
    """``Authorization: Basic ...`` for ``username:token``, as git's ``http.extraHeader``.

    Raises:
        InputError: the token or user name holds a line break or other control character.
    """
    if _UNSAFE_CHARS.search(token) or _UNSAFE_CHARS.search(username) or ":" in username:
        raise InputError("A git token or user name must not hold whitespace, ':' or controls")
    credentials = base64.b64encode(f"{username}:{token}".encode()).decode("ascii")
    return f"Authorization: Basic {credentials}"


def scm_hosts_from_config(config: Mapping[str, Any]) -> dict[str, str]:
    """`ScmIntegrations.scm_hosts` of a configuration tree."""
    return ScmIntegrations.from_config(config).scm_hosts()


def _entries(section: Mapping[str, Any], kind: str) -> list[Any]:
    value = section.get(kind)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"Config key 'integrations.{kind}' must be a list")
    return value


def _github_entry(entry: Any, key: str) -> GithubIntegration:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("host"), str):
        raise InputError(f"{key} must be a mapping with a host")
    host = entry["host"].strip().lower()
    if not host or _UNSAFE_CHARS.search(host) or "/" in host:
        raise InputError(f"{key}.host must be a host name, got {entry['host']!r}")
    token = _optional_str(entry, "token", key)
    if token is not None and _UNSAFE_CHARS.search(token):
        raise InputError(f"{key}.token must not hold whitespace")
    is_github = host == GITHUB_HOST
    api = _optional_str(entry, "apiBaseUrl", key) or (GITHUB_API_BASE_URL if is_github else None)
    raw = _optional_str(entry, "rawBaseUrl", key) or (GITHUB_RAW_BASE_URL if is_github else None)
    apps = []
    for i, app in enumerate(entry.get("apps") or []):
        app_key = f"{key}.apps[{i}]"
        if not isinstance(app, Mapping) or app.get("appId") in (None, ""):
            raise InputError(f"{app_key} must have an appId and a privateKey")
        private_key = _optional_str(app, "privateKey", app_key)
        if not private_key:
            raise InputError(f"{app_key}.privateKey is required")
        installation = app.get("installationId")
        owners = app.get("allowedInstallationOwners") or []
        if not isinstance(owners, list):
            raise InputError(f"{app_key}.allowedInstallationOwners must be a list")
        try:
            installation_id = None if installation in (None, "") else int(installation)
        except (TypeError, ValueError):
            raise InputError(f"{app_key}.installationId must be an integer") from None
        apps.append(
            GithubApp(
                app_id=str(app["appId"]),
                private_key=private_key,
                installation_id=installation_id,
                allowed_installation_owners=tuple(str(o) for o in owners),
            )
        )
    return GithubIntegration(
        host=host,
        api_base_url=api.rstrip("/") if api else None,
        raw_base_url=raw.rstrip("/") if raw else None,
        token=token or None,
        apps=tuple(apps),
    )


def _git_entry(entry: Any, key: str, cwd: Path) -> GitHostIntegration:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("host"), str):
        raise InputError(f"{key} must be a mapping with a host")
    host = entry["host"].strip()
    base = _optional_str(entry, "baseUrl", key)
    if base is None and (host.startswith(("file:", "/"))):
        base = host  # the older form: the host names the directory itself
    if not base:
        raise InputError(
            f"{key}.baseUrl is required (file:./var/git, file:///srv/git, ssh://... or "
            "https://...); was it a ${VAR} that is not set?"
        )
    base_url = _normalise_base_url(base, f"{key}.baseUrl", cwd)
    token = _optional_str(entry, "token", key)
    username = _optional_str(entry, "username", key) or DEFAULT_TOKEN_USERNAME
    if token is not None:
        if urlsplit(base_url).scheme not in ("https", "http"):
            raise InputError(f"{key}.token is only used with an https:// baseUrl")
        basic_auth_header(username, token)  # refuses tokens that cannot be a header
    return GitHostIntegration(
        host=host.lower() if not host.startswith(("file:", "/")) else host,
        base_url=base_url,
        token=token or None,
        username=username,
    )


def _normalise_base_url(value: str, key: str, cwd: Path) -> str:
    if _UNSAFE_CHARS.search(value.replace(" ", "")):
        raise InputError(f"{key} must not hold control characters")
    if value.startswith("/"):
        return Path(os.path.normpath(value)).as_uri()
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if "::" in value.split("://", 1)[0] or scheme not in GIT_HOST_SCHEMES:
        raise InputError(
            f"{key}: {value!r} is not a supported git host URL; use file:, ssh:// or https://"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise InputError(f"{key}: a file: URL names a local directory, got {value!r}")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            path = cwd / path
        return Path(os.path.normpath(path)).as_uri()
    if " " in value or parts.query or parts.fragment or not parts.hostname:
        raise InputError(f"{key}: {value!r} must be a URL with a host and no query")
    if parts.password is not None or (scheme != "ssh" and parts.username is not None):
        raise InputError(f"{key}: credentials go in the token key, never in the URL")
    if scheme == "http" and not is_loopback_host(parts.hostname):
        raise InputError(f"{key}: http:// is allowed on loopback only; use https://")
    return value.rstrip("/")


def is_loopback_host(hostname: str) -> bool:
    """Whether ``hostname`` is ``localhost`` or a loopback address."""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _optional_str(entry: Mapping[str, Any], name: str, key: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise InputError(f"{key}.{name} must be a string")
    return str(value)


def _url_encode(text: str) -> str:
    """Percent-encode what WHATWG URL serialization encodes in a path or query."""
    return "".join(
        quote(char, safe="") if char in " \"'<>`" or not 0x20 < ord(char) < 0x7F else char
        for char in text
    )

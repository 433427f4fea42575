"""Fetch a template from a git remote without handing the remote any control over us.

A fetch URL is checked before git sees it: only ``https://`` remotes on a configured host, and
``file://`` remotes under a configured local git host, are accepted. A ref and a subdirectory
may ride along, in one of these forms::

    https://github.com/acme/templates.git                 default branch, repository root
    https://github.com/acme/templates.git#v1.2.0          a branch, tag or full commit id
    https://github.com/acme/templates.git?ref=main&path=python/service
    https://github.com/acme/templates/tree/main/python/service      (GitHub's tree URLs)
    https://gitlab.example.com/acme/templates/-/tree/main/python    (GitLab's)

git then runs with no prompts, no user or system configuration, no hooks, only the allowed
transport (``GIT_ALLOW_PROTOCOL``), every positional argument after ``--``, and symlinks checked
out as plain files. It fetches one commit (``--depth=1``) into a directory of the step; a cancel
kills git's whole process group.

The same environment (`git_environment`), runner (`GitRunner`) and URL checks
(`check_remote_url`, `is_valid_ref`) serve pushing (`scaffolder.integrations.git_push`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal as _signal
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations import Cancellation
from scaffolder.integrations.scm import ScmIntegrations

#: How long one git command may run before it is killed.
GIT_TIMEOUT_SECONDS = 300.0

#: Settings every git command runs with (on top of an empty global and system config).
_GIT_CONFIG = (
    "-c", "core.symlinks=false",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "advice.detachedHead=false",
    "-c", "submodule.recurse=false",
    "-c", "credential.helper=",
)  # fmt: skip

#: Environment variables passed through to git (proxies and CA bundles, never credentials).
_PASSED_ENV = (
    "PATH",
    "LANG",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
)

_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@+\-]*$")
_TREE = re.compile(
    r"^(?P<repo>/[^/]+/[^/]+?)(?:\.git)?/(?:-/)?tree/(?P<ref>[^/]+)(?:/(?P<path>.*))?$"
)


@dataclass(frozen=True, kw_only=True)
class GitLocation:
    """A checked git fetch URL, split into what git is given.

    Attributes:
        remote: the URL handed to ``git fetch`` (no credentials, query or fragment).
        ref: branch, tag or full commit id; None for the remote's default branch.
        subdir: the template's directory inside the repository, or None for its root.
    """

    remote: str
    ref: str | None = None
    subdir: str | None = None

    @property
    def name(self) -> str:
        """A directory name for the clone (the repository's last path segment)."""
        last = self.remote.rstrip("/").rsplit("/", 1)[-1]
        last = last.removesuffix(".git")
        return re.sub(r"[^A-Za-z0-9._-]", "_", last) or "repository"

    @property
    def source(self) -> str:
        """What trust lists match: the remote, plus the subdirectory when there is one."""
        if self.subdir is None:
            return self.remote
        return f"{self.remote.removesuffix('/')}/{self.subdir}"

    def __str__(self) -> str:
        shown = self.remote
        if self.ref is not None:
            shown += f"#{self.ref}"
        if self.subdir is not None:
            shown += f" ({self.subdir})"
        return shown


def local_git_roots(config: Mapping[str, Any]) -> tuple[Path, ...]:
    """The directories of local git hosts in ``integrations.git[]``.

    An entry whose ``baseUrl`` (or, in the older form, ``host``) is a ``file:`` URL or an
    absolute path is a local host: ``file://`` fetch URLs are allowed below it.
    """
    return ScmIntegrations.from_config(config).local_roots()


def is_valid_ref(ref: str) -> bool:
    """Whether ``ref`` is a branch, tag or commit name git cannot mistake for anything else."""
    return bool(
        _REF.fullmatch(ref)
        and ".." not in ref
        and "//" not in ref
        and not ref.endswith(("/", ".lock"))
    )


def check_remote_url(url: str, *, schemes: Collection[str], what: str = "remote URL") -> str:
    """Refuse a remote URL that could make git do anything but talk to a git host.

    Refused before git ever sees them: transport helpers (``ext::``, ``fd::``, any
    ``<transport>::``), a leading ``-`` (an option), scp-like ``user@host:path``, whitespace
    and control characters, credentials (a password anywhere, any user name outside
    ``ssh://``), a ``file`` URL naming a host, and every scheme not in ``schemes``.

    Returns:
        The URL's scheme, lower-cased (what ``GIT_ALLOW_PROTOCOL`` should allow).

    Raises:
        InputError: naming ``what`` and the reason; the URL is shown without credentials.
    """
    shown = _strip(url)
    if url.startswith("-") or _UNSAFE_CHARS.search(url):
        raise InputError(f"Refusing {what} {shown!r}: it starts with '-' or holds whitespace")
    head = url.split("://", 1)[0] if "://" in url else url
    if "::" in head:
        raise InputError(f"Refusing {what} {shown!r}: git transport helpers are not allowed")
    if "://" not in url:
        raise InputError(f"Refusing {what} {shown!r}: not a URL (scp-like and paths are refused)")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {s.lower() for s in schemes}:
        allowed = ", ".join(sorted(schemes))
        raise InputError(
            f"Refusing {what} {shown!r}: the {scheme or 'empty'} scheme is not allowed "
            f"(allowed: {allowed})"
        )
    try:
        username, password = parts.username, parts.password
    except ValueError:
        raise InputError(f"Refusing {what} {shown!r}: not a valid URL") from None
    if password is not None or (username is not None and scheme != "ssh"):
        raise InputError(f"Refusing {what} {shown!r}: credentials are not allowed in a git URL")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InputError(f"Refusing {what} {shown!r}: file URLs may not name a host")
    elif not parts.hostname:
        raise InputError(f"Refusing {what} {shown!r}: no host")
    return scheme


def git_environment(
    home: Path,
    *,
    protocol: str,
    config: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment every git command of ours runs with.

    No prompts, no user or system configuration, only ``protocol`` as a transport, LFS
    smudging off; proxies and CA bundles pass through, credentials never do.

    Args:
        home: an empty directory git may use as ``HOME``.
        protocol: the one transport allowed (``file``, ``https``, ``ssh``, ``http``).
        config: git settings passed as ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_<n>``/
            ``GIT_CONFIG_VALUE_<n>``: never on the command line (``ps`` shows that) and never
            written to any ``.git/config``. Secrets (``http.extraHeader``) go here.
        extra: further variables (author and committer, ``SSH_AUTH_SOCK``).
    """
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.update(
        HOME=str(home),
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",
        SSH_ASKPASS="true",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ALLOW_PROTOCOL=protocol,
        GIT_PROTOCOL_FROM_USER="0",
        GIT_LFS_SKIP_SMUDGE="1",
    )
    if config:
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
    env.update(extra or {})
    return env


def parse_git_url(
    url: str, *, hosts: Collection[str], file_roots: Sequence[Path] = ()
) -> GitLocation:
    """Check a fetch URL and split it into remote, ref and subdirectory.

    Args:
        url: the ``url`` input.
        hosts: hosts an ``https://`` remote may be on (the configured integrations).
        file_roots: directories a ``file://`` remote may be in (local git hosts).

    Raises:
        InputError: the URL has another scheme, credentials, an unknown host, unsafe
            characters, or a ref or path that git could mistake for something else.
    """
    if _UNSAFE_CHARS.search(url):
        raise InputError(f"Invalid input 'url': {url!r} contains whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"ref", "path"})
    if unknown:
        raise InputError(f"Invalid input 'url': unsupported query parameter {unknown[0]!r}")
    ref = parts.fragment or _single(query, "ref")
    subdir = _single(query, "path")
    path = parts.path

    if scheme == "https":
        if "@" in parts.netloc:
            raise InputError("Invalid input 'url': credentials are not allowed in a fetch URL")
        host = (parts.hostname or "").lower()
        allowed = {h.lower() for h in hosts}
        if not host or (host not in allowed and parts.netloc.lower() not in allowed):
            raise InputError(f"No integration found for location {_strip(url)}")
        tree = _TREE.match(path)
        if tree is not None and ref is None and subdir is None:
            path, ref, subdir = tree["repo"], unquote(tree["ref"]), tree["path"]
        remote = f"https://{parts.netloc}{path}"
    elif scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InputError(f"Invalid input 'url': file URLs may not name a host: {url}")
        local = Path(unquote(path))
        real = os.path.realpath(local)
        if not any(_inside(os.path.realpath(root), real) for root in file_roots):
            raise InputError(
                f"Invalid input 'url': {_strip(url)} is not under a local git host "
                "(integrations.git[].host)"
            )
        remote = local.as_uri()
    else:
        raise InputError(
            f"Invalid input 'url': {scheme or 'the'} scheme is not supported for fetching a "
            f"cookiecutter template ({_strip(url)}); use https:// or a path relative to the "
            "template"
        )

    if ref is not None:
        ref = unquote(ref)
        if not is_valid_ref(ref):
            raise InputError(f"Invalid input 'url': {ref!r} is not a valid git ref")
    return GitLocation(remote=remote, ref=ref, subdir=_check_subdir(subdir))


def fetch_git(
    location: GitLocation,
    dest: Path,
    *,
    home: Path,
    signal: Cancellation | None = None,
    timeout: float = GIT_TIMEOUT_SECONDS,
) -> str:
    """Fetch one commit of ``location`` into ``dest`` (no ``.git`` left behind).

    Args:
        location: a URL checked by `parse_git_url`.
        dest: a directory that does not exist yet.
        home: an empty directory git may use as ``HOME``.
        signal: the task's cancel signal; a cancel kills git at once.
        timeout: seconds each git command may take.

    Returns:
        The commit id that was checked out.

    Raises:
        ScaffolderError: git failed (unknown repository or ref, network, timeout).
        TaskCancelledError: the task was cancelled.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = git_environment(home, protocol="file" if location.remote.startswith("file:") else "https")
    run = GitRunner(env=env, signal=signal, timeout=timeout, shown=str(location))
    run("init", "-q", "--", str(dest))
    run(
        "-C", str(dest), "fetch", "--depth=1", "--no-tags", "--no-recurse-submodules", "-q",
        "--", location.remote, location.ref or "HEAD",
    )  # fmt: skip
    run("-C", str(dest), "checkout", "-q", "--detach", "FETCH_HEAD")
    commit = run("-C", str(dest), "rev-parse", "HEAD").strip()
    shutil.rmtree(dest / ".git")
    return commit


class _ProcessGroup:
    """Kills a child's whole process group (git's helpers included) on cancel."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    def terminate(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, _signal.SIGKILL)


@dataclass(frozen=True, kw_only=True)
class GitRunner:
    """Runs ``git <args>`` with the safe settings and ``env``; a cancel kills it.

    Attributes:
        env: the whole environment (see `git_environment`).
        signal: the task's cancel signal, or None.
        timeout: seconds one command may take.
        shown: what the error messages name (a URL without credentials).
        verb: what the messages say failed: ``Failed to <verb> <shown>: ...``.
    """

    env: Mapping[str, str]
    signal: Cancellation | None
    timeout: float
    shown: str
    verb: str = "fetch"

    def __call__(self, *args: str) -> str:
        """Run one command; its standard output.

        Raises:
            ScaffolderError: git failed or timed out (the message ends with git's own).
            TaskCancelledError: the task was cancelled.
        """
        process = subprocess.Popen(
            ["git", *_GIT_CONFIG, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(self.env),
            start_new_session=True,
        )
        group = _ProcessGroup(process)
        if self.signal is not None:
            self.signal.attach(group)
        try:
            out, err = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            group.terminate()
            process.communicate()
            raise ScaffolderError(
                f"Failed to {self.verb} {self.shown}: git took longer than {self.timeout:g} s"
            ) from None
        finally:
            if self.signal is not None:
                self.signal.detach(group)
        if self.signal is not None and self.signal.cancelled:
            raise TaskCancelledError("The task has been cancelled")
        if process.returncode != 0:
            raise ScaffolderError(f"Failed to {self.verb} {self.shown}: {_last_line(err)}")
        return out.decode("utf-8", "replace")


def _single(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    if not values:
        return None
    if len(values) > 1 or not values[0]:
        raise InputError(f"Invalid input 'url': give {key} once, with a value")
    return values[0]


def _check_subdir(subdir: str | None) -> str | None:
    if subdir is None:
        return None
    subdir = unquote(subdir).strip("/")
    parts = PurePosixPath(subdir).parts
    if not parts:
        return None
    if any(part in ("..", ".") for part in parts) or subdir.startswith("-"):
        raise InputError(f"Invalid input 'url': {subdir!r} is not a path inside the repository")
    return "/".join(parts)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _strip(url: str) -> str:
    """``url`` without credentials, for messages."""
    return re.sub(r"//[^/@]*@", "//", url)


def _last_line(stderr: bytes) -> str:
    """What git said went wrong: a push's rejection line, else its last line (no hints)."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line and not line.startswith("hint:")]
    if not lines:
        return "git failed"
    rejected = [line for line in lines if line.startswith("! ")]
    last = rejected[-1] if rejected else lines[-1]
    return _strip(last.removeprefix("fatal: ").removeprefix("error: "))

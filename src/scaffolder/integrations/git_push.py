"""Commit a directory as a repository's first commit and push it, with plain ``git``.

Used by ``publish:git`` and ``publish:github``. The rules, all enforced here:

* The remote URL is checked before git runs (`check_remote_url`): no ``ext::``/``fd::``
  transport helpers, no leading ``-``, no scp-like forms, no credentials in it, and only the
  ``file``, ``https``, ``ssh`` (and loopback ``http``) schemes; git may then use that one
  transport only.
* A token reaches git only as an ``http.extraHeader`` in ``GIT_CONFIG_*`` variables of the
  git process: never in argv, never in a URL, never in a ``.git/config``.
* The repository's git directory is a temporary directory beside nothing: the source tree
  gets no ``.git``, and nothing in the tree (a ``.git`` of its own, ``.gitattributes``
  filters) can configure git. The commit holds exactly the tree: ignore files do not drop
  anything (``add --force``), line endings and filters are not applied
  (``$GIT_DIR/info/attributes``), a nested ``.git`` is refused rather than made a gitlink.
* git runs with the safe settings of `scaffolder.integrations.git` (no hooks, no user or
  system configuration, no prompts), every positional argument after ``--``, and a cancel
  kills it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from scaffolder.errors import InputError
from scaffolder.integrations import Cancellation
from scaffolder.integrations.git import (
    GIT_TIMEOUT_SECONDS,
    GitRunner,
    check_remote_url,
    git_environment,
    is_valid_ref,
)
from scaffolder.integrations.scm import is_loopback_host

#: Schemes a push may use (``http`` only where an integration allows it: loopback).
PUSH_SCHEMES: Final = frozenset({"file", "https", "ssh", "http"})
DEFAULT_AUTHOR_NAME: Final = "Scaffolder"
DEFAULT_AUTHOR_EMAIL: Final = "scaffolder@backstage.io"
DEFAULT_COMMIT_MESSAGE: Final = "initial commit"

#: Highest-precedence attributes: store every file's bytes as they are.
_EXACT_ATTRIBUTES = "* -text !eol -filter -ident !working-tree-encoding\n"
#: Settings for the commands that write objects (on top of `scaffolder.integrations.git`'s).
_COMMIT_CONFIG = (
    "-c", "core.autocrlf=false",
    "-c", "core.safecrlf=false",
    "-c", "core.attributesFile=/dev/null",
    "-c", "core.excludesFile=/dev/null",
    "-c", "commit.gpgSign=false",
    "-c", "gc.auto=0",
)  # fmt: skip
_IDENT_FORBIDDEN = frozenset("<>\n\r\x00")


@dataclass(frozen=True, kw_only=True)
class GitAuthor:
    """Who a commit is by: author and committer alike."""

    name: str
    email: str

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("email", self.email)):
            if not value.strip() or _IDENT_FORBIDDEN & set(value):
                raise InputError(
                    f"Invalid git author {what} {value!r}: it must not be empty or hold "
                    "'<', '>' or line breaks"
                )


def resolve_author(
    *,
    name: str | None,
    email: str | None,
    config: Mapping[str, Any],
    user: Mapping[str, Any] | None = None,
) -> GitAuthor:
    """The commit identity, field by field as Backstage's publishers resolve it.

    Each of name and email is the action input if given, else
    ``scaffolder.defaultAuthor.name``/``.email``, else the task user's profile
    (``spec.profile.displayName``/``email`` of its entity; ours, where Backstage writes the
    generic default), else ``Scaffolder``/``scaffolder@backstage.io``.
    """
    scaffolder = config.get("scaffolder")
    default = scaffolder.get("defaultAuthor") if isinstance(scaffolder, Mapping) else None
    default = default if isinstance(default, Mapping) else {}
    entity = (user or {}).get("entity")
    spec = entity.get("spec") if isinstance(entity, Mapping) else None
    profile = spec.get("profile") if isinstance(spec, Mapping) else None
    profile = profile if isinstance(profile, Mapping) else {}

    def pick(*candidates: Any) -> str | None:
        for candidate in candidates:
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
        return None

    return GitAuthor(
        name=pick(name, default.get("name"), profile.get("displayName")) or DEFAULT_AUTHOR_NAME,
        email=pick(email, default.get("email"), profile.get("email")) or DEFAULT_AUTHOR_EMAIL,
    )


def resolve_commit_message(message: str | None, config: Mapping[str, Any]) -> str:
    """The ``gitCommitMessage`` input, else ``scaffolder.defaultCommitMessage``, else upstream's."""
    if isinstance(message, str) and message.strip():
        return message
    scaffolder = config.get("scaffolder")
    configured = scaffolder.get("defaultCommitMessage") if isinstance(scaffolder, Mapping) else None
    if isinstance(configured, str) and configured.strip():
        return configured
    return DEFAULT_COMMIT_MESSAGE


def check_push_url(url: str) -> str:
    """`check_remote_url` for a push: `PUSH_SCHEMES`, and ``http://`` on loopback only.

    Returns:
        The scheme.

    Raises:
        InputError: the URL is refused.
    """
    scheme = check_remote_url(url, schemes=PUSH_SCHEMES)
    if scheme == "http" and not is_loopback_host(urlsplit(url).hostname or ""):
        raise InputError(f"Refusing remote URL {url!r}: http:// only on loopback; use https://")
    return scheme


def check_branch(branch: str) -> str:
    """``branch`` if it is a branch name git cannot mistake for an option or a path.

    Raises:
        InputError: it is not.
    """
    if not is_valid_ref(branch) or branch.startswith("refs/") or branch == "HEAD":
        raise InputError(f"Invalid branch name {branch!r}")
    return branch


def init_commit_push(
    source: Path,
    remote_url: str,
    *,
    branch: str,
    message: str,
    author: GitAuthor,
    auth_header: str | None,
    cancel: Cancellation | None,
    force: bool = False,
    timeout: float = GIT_TIMEOUT_SECONDS,
) -> str:
    """Commit the tree under ``source`` as a root commit and push it to ``branch``.

    Args:
        source: the directory whose files become the commit (it is not modified).
        remote_url: where to push; checked by `check_push_url`.
        branch: the branch to create on the remote.
        message: the commit message.
        author: author and committer.
        auth_header: an ``http.extraHeader`` value (``Authorization: Basic ...``) for an
            ``http(s)`` remote, passed to git through its environment only; None for none.
        cancel: the task's cancel signal; a cancel kills git at once.
        force: replace the branch if it exists (a retry pushing again to a repository the
            same step created).
        timeout: seconds each git command may take.

    Returns:
        The commit id pushed.

    Raises:
        InputError: the URL, branch, header or source tree is refused (before git runs).
        ScaffolderError: git failed (the message names the URL, never a credential).
        TaskCancelledError: the task was cancelled.
    """
    scheme = check_push_url(remote_url)
    check_branch(branch)
    if auth_header is not None:
        if scheme not in ("https", "http"):
            raise InputError(f"An auth header is only sent to an https remote, not {scheme}")
        if any(char in auth_header for char in "\r\n\x00"):
            raise InputError("An auth header must be a single line")
    if not source.is_dir():
        raise InputError(f"Cannot publish {source}: not a directory")
    _refuse_nested_git(source)

    scratch = Path(tempfile.mkdtemp(prefix="scaffolder-push-"))
    try:
        home = scratch / "home"
        home.mkdir()
        git_dir = scratch / "repo.git"
        extra = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": author.name,
            "GIT_COMMITTER_EMAIL": author.email,
        }
        if scheme == "ssh" and "SSH_AUTH_SOCK" in os.environ:
            extra["SSH_AUTH_SOCK"] = os.environ["SSH_AUTH_SOCK"]
        env = git_environment(
            home,
            protocol=scheme,
            config={"http.extraHeader": auth_header} if auth_header is not None else None,
            extra=extra,
        )
        shown = remote_url
        run = GitRunner(env=env, signal=cancel, timeout=timeout, shown=shown, verb="push to")
        run("init", "-q", "--bare", f"--initial-branch={branch}", "--template=", "--", str(git_dir))
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "attributes").write_text(_EXACT_ATTRIBUTES, encoding="utf-8")
        tree = ("-C", str(source), f"--git-dir={git_dir}", f"--work-tree={source}")
        run(*_COMMIT_CONFIG, *tree, "add", "--all", "--force", "--", ".")
        run(
            *_COMMIT_CONFIG, *tree, "commit", "-q", "--allow-empty", "--no-verify",
            "--cleanup=whitespace", f"--message={message}",
        )  # fmt: skip
        commit = run(f"--git-dir={git_dir}", "rev-parse", "--verify", "HEAD^{commit}").strip()
        refspec = f"{'+' if force else ''}{commit}:refs/heads/{branch}"
        run(
            f"--git-dir={git_dir}", "push", "-q", "--no-verify", "--", remote_url, refspec
        )  # fmt: skip
        return commit
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def list_remote_refs(
    remote_url: str,
    *,
    auth_header: str | None,
    cancel: Cancellation | None,
    timeout: float = GIT_TIMEOUT_SECONDS,
) -> list[str]:
    """The refs a remote repository has (``git ls-remote``); empty for an empty repository.

    Raises:
        InputError: the URL is refused.
        ScaffolderError: git failed (no such repository, no access, network).
    """
    scheme = check_push_url(remote_url)
    with tempfile.TemporaryDirectory(prefix="scaffolder-ls-remote-") as scratch:
        env = git_environment(
            Path(scratch),
            protocol=scheme,
            config={"http.extraHeader": auth_header} if auth_header is not None else None,
        )
        run = GitRunner(env=env, signal=cancel, timeout=timeout, shown=remote_url, verb="read")
        out = run("ls-remote", "--", remote_url)
    return [line.split("\t", 1)[1] for line in out.splitlines() if "\t" in line]


def create_bare_repository(
    path: Path,
    *,
    branch: str,
    description: str | None = None,
    cancel: Cancellation | None = None,
    timeout: float = GIT_TIMEOUT_SECONDS,
) -> bool:
    """Create an empty bare repository at ``path`` whose ``HEAD`` is ``branch``.

    The directory is made with one ``mkdir``, so of two tasks creating the same repository
    only one does; the other sees it exists.

    Returns:
        True if this call created it, False if ``path`` already existed (it is left alone).

    Raises:
        ScaffolderError: git failed (the half-made directory is removed).
    """
    check_branch(branch)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        return False
    try:
        with tempfile.TemporaryDirectory(prefix="scaffolder-init-") as home:
            env = git_environment(Path(home), protocol="file")
            run = GitRunner(
                env=env, signal=cancel, timeout=timeout, shown=path.as_uri(), verb="create"
            )
            run(
                "init", "-q", "--bare", f"--initial-branch={branch}", "--template=", "--", str(path)
            )
        if description:
            (path / "description").write_text(description.strip() + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return True


def _refuse_nested_git(source: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(source):
        for name in (*dirnames, *filenames):
            if name.lower() == ".git":
                found = Path(dirpath, name).relative_to(source)
                raise InputError(
                    f"Cannot publish {source}: it contains {found.as_posix()}; a repository "
                    "inside the tree would be pushed as a submodule link, not as files"
                )

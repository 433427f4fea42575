"""Reading catalog files out of the bare repositories of a local git host.

``publish:git`` pushes to ``integrations.git[]`` hosts whose ``baseUrl`` is a ``file:``
directory of bare repositories (the local git host of ``make serve``), and outputs
``repoContentsUrl`` as ``file:///<root>/<owner>/<repo>.git/blob/<branch>``. A ``url``
location whose target has that shape, with a path after the branch, is read here::

    file:///srv/git/platform/payments.git/blob/main/catalog-info.yaml
    file:///srv/git/platform/payments.git/blob/feature/x/docs/catalog-info.yaml

The repository must lie under one of the hosts' directories (symlinks resolved), so
``POST /locations`` cannot read anything else on the machine. The branch is the longest
branch or tag of the repository that the rest of the path starts with (branches may hold
``/``), or a full commit id. The file is read from git's object database with
``git cat-file`` (no work tree, no filters, no hooks), under the safe environment of
`scaffolder.integrations.git`; a missing file is a ``NotFoundError`` like a 404.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from scaffolder.catalog.parsing import MAX_FILE_BYTES
from scaffolder.catalog.readers import ReadError
from scaffolder.errors import ScaffolderError
from scaffolder.integrations.git import GitRunner, git_environment, is_valid_ref

DEFAULT_TIMEOUT_SECONDS = 10.0
_REPOSITORY_PATH = re.compile(r"^(?P<repo>/.+?\.git)/(?:blob|tree)/(?P<rest>.+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


@dataclass(frozen=True, kw_only=True)
class GitFile:
    """A ``file://`` URL split into the bare repository and what follows ``blob/``
    (``<revision>/<path>``, split once the repository's refs are known)."""

    repository: Path
    rest: str


@dataclass(frozen=True, kw_only=True)
class GitFileReader:
    """Reads ``file://…/<repo>.git/blob/<branch>/<path>`` URLs under ``roots``.

    Attributes:
        roots: directories of the local git hosts (``integrations.git[]`` ``file:`` base URLs).
        timeout: seconds one git command may take.
        max_bytes: larger files are refused (as the HTTP reader refuses larger bodies).
    """

    roots: tuple[Path, ...]
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_bytes: int = MAX_FILE_BYTES

    def locate(self, url: str) -> GitFile:
        """The repository and the ``<revision>/<path>`` rest that ``url`` names.

        Raises:
            ReadError: ``NotAllowedError`` when the URL is not a file of a repository under
                one of the roots.
        """
        try:
            parts = urlsplit(url)
        except ValueError:
            raise ReadError("NotAllowedError", _not_allowed(url)) from None
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ReadError("NotAllowedError", _not_allowed(url))
        match = _REPOSITORY_PATH.match(unquote(parts.path))
        if match is None:
            raise ReadError("NotAllowedError", _not_allowed(url))
        repository = os.path.realpath(match["repo"])
        inside = any(
            repository.startswith(os.path.realpath(root).rstrip(os.sep) + os.sep)
            for root in self.roots
        )
        if not inside or not os.path.isdir(repository):
            raise ReadError("NotAllowedError", _not_allowed(url))
        return GitFile(repository=Path(repository), rest=match["rest"])

    def read(self, url: str) -> bytes:
        """The bytes of the file ``url`` names.

        Raises:
            ReadError: ``NotAllowedError`` outside the roots, ``NotFoundError`` for a missing
                repository, revision or file, ``Error`` for anything else (a directory, a
                file too large, git failing).
        """
        where = self.locate(url)
        with tempfile.TemporaryDirectory(prefix="scaffolder-catalog-git-") as home:
            env = git_environment(Path(home), protocol="file", extra={"GIT_LITERAL_PATHSPECS": "1"})
            run = GitRunner(env=env, signal=None, timeout=self.timeout, shown=url, verb="read")
            git_dir = ("--git-dir", str(where.repository))
            try:
                revision, path = self._split(run, git_dir, where.rest, url)
                listing = run(*git_dir, "ls-tree", "-z", "-l", "--full-tree", revision, "--", path)
            except ScaffolderError as exc:
                raise ReadError("Error", f"Unable to read {url}, {exc.message}") from None
            entry, _, listed = listing.rstrip("\0").partition("\t")
            fields = entry.split()
            if len(fields) != 4 or listed != path:
                raise ReadError("NotFoundError", f"could not read {url}, 404 Not Found")
            _, kind, oid, size = fields
            if kind != "blob":
                raise ReadError("Error", f"Unable to read {url}, it is a {kind}, not a file")
            if int(size) > self.max_bytes:
                raise ReadError(
                    "Error", f"Unable to read {url}, the file is larger than {self.max_bytes} bytes"
                )
            try:
                # Decoded as UTF-8 (invalid bytes replaced), as upstream's parser decodes.
                return run(*git_dir, "cat-file", "blob", oid).encode()
            except ScaffolderError as exc:
                raise ReadError("Error", f"Unable to read {url}, {exc.message}") from None

    @staticmethod
    def _split(run: GitRunner, git_dir: Sequence[str], rest: str, url: str) -> tuple[str, str]:
        """``<revision>/<path>`` into the revision and the path inside the repository."""
        refs = run(*git_dir, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags")
        names = {
            line.removeprefix("refs/heads/").removeprefix("refs/tags/")
            for line in refs.splitlines()
            if line
        }
        head, _, tail = rest.partition("/")
        candidates = sorted(
            (name for name in names if rest.startswith(name + "/")), key=len, reverse=True
        )
        if candidates:
            revision, path = candidates[0], rest[len(candidates[0]) + 1 :]
        elif _COMMIT.match(head):
            revision, path = head, tail
        else:
            raise ReadError("NotFoundError", f"could not read {url}, 404 Not Found")
        parts = PurePosixPath(path).parts
        if (
            not parts
            or any(part in ("..", ".") for part in path.split("/"))
            or not is_valid_ref(revision)
        ):
            raise ReadError("NotAllowedError", _not_allowed(url))
        return revision, "/".join(parts)


def _not_allowed(url: str) -> str:
    return (
        f"Reading from '{url}' is not allowed. A file URL must name a file of a bare "
        "repository of a local git host (integrations.git[] with a file: baseUrl), as "
        "file:///<baseUrl path>/<owner>/<repo>.git/blob/<branch>/<path>"
    )

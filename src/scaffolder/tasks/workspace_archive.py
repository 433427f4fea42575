"""Workspace archives: the files a run leaves for a re-run that skips its completed steps.

A run that ends without completing (a step failed, the task was cancelled, its worker handed
it back) leaves saved completed steps behind; a re-run skips them, so it needs their files
too. The worker removes every workspace at the end of a run, so the workspace is packed into
the task row first (CONTRACT §11.6, upstream's ``database`` workspace provider) and unpacked
into the re-run's fresh workspace.

The archive is a gzipped tar (PAX) of regular files, directories and symlinks (stored as
links, never followed; only links that stay inside the workspace), whose global header names
the steps whose work it holds. Unpacking trusts nothing in it: every member is checked before
anything is written (no absolute or ``..`` names, no member through a symlink member, no
hardlinks, devices or fifos, sizes bounded), files are created with ``O_EXCL | O_NOFOLLOW``,
symlinks come last (nothing is ever written through one), and each one must resolve inside
the workspace once all are there.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from scaffolder.errors import ScaffolderError

#: The PAX global header that names the completed steps whose files the archive holds.
STEPS_HEADER = "SCAFFOLDER.completedSteps"
#: A fast level: archives are also made at shutdown, inside the hand-back wait.
COMPRESS_LEVEL = 3
#: File contents an archive may hold, per allowed compressed byte (64 MiB -> 2 GiB): bounds
#: what a restore writes to disk, whatever the compression ratio.
MAX_EXPANSION = 32
#: Most entries an archive may hold (each costs memory while it is read).
MAX_MEMBERS = 500_000

_CHUNK = 1024 * 1024


class WorkspaceTooLargeError(ScaffolderError):
    """The workspace is over the configured cap; it is not stored."""


class UnsafeArchiveError(ScaffolderError):
    """An archive that is unreadable or would write outside (or beside) the workspace."""


def pack_workspace(root: Path, *, steps: Iterable[str], max_bytes: int) -> bytes:
    """A gzipped tar of the workspace ``root``, naming ``steps`` as the work it holds.

    Regular files, directories and symlinks whose target stays inside ``root`` (absolute
    ones are stored relative); anything else (a link out, a fifo, a socket) is left out.

    Raises:
        WorkspaceTooLargeError: the archive would exceed ``max_bytes``, or its contents
            ``max_bytes * MAX_EXPANSION``, or it would hold more than `MAX_MEMBERS` entries.
    """
    base = root.resolve()
    out = _CappedBuffer(max_bytes)
    content_limit = max_bytes * MAX_EXPANSION
    content = 0
    members = 1
    header = {STEPS_HEADER: json.dumps(sorted(set(steps)))}
    with tarfile.open(
        fileobj=out,
        mode="w:gz",
        compresslevel=COMPRESS_LEVEL,
        format=tarfile.PAX_FORMAT,
        pax_headers=header,
    ) as tar:
        # A root entry first: a reader meets the global header only along with a member.
        tar.addfile(_info(".", tarfile.DIRTYPE, 0o700))
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted([*dirnames, *filenames]):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, base)
                st = os.lstat(path)
                members += 1
                if members > MAX_MEMBERS:
                    raise WorkspaceTooLargeError(f"the workspace has over {MAX_MEMBERS} entries")
                if stat.S_ISLNK(st.st_mode):
                    target = _inside_link(base, path)
                    if target is not None:
                        info = _info(rel, tarfile.SYMTYPE, 0o777)
                        info.linkname = target
                        tar.addfile(info)
                elif stat.S_ISDIR(st.st_mode):
                    tar.addfile(_info(rel, tarfile.DIRTYPE, st.st_mode, st.st_mtime))
                elif stat.S_ISREG(st.st_mode):
                    content += st.st_size
                    if content > content_limit:
                        raise WorkspaceTooLargeError(
                            f"the workspace holds over {content_limit} bytes of files"
                        )
                    _add_file(tar, path, rel)
    return out.getvalue()


def archived_steps(data: bytes) -> list[str]:
    """The completed steps whose files the archive holds (its `STEPS_HEADER`).

    Raises:
        UnsafeArchiveError: not an archive of ours, or no readable step list.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            raw = tar.pax_headers.get(STEPS_HEADER)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UnsafeArchiveError(f"not a readable workspace archive ({exc})") from exc
    try:
        steps = json.loads(raw) if raw is not None else None
    except ValueError:
        steps = None
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise UnsafeArchiveError("the archive does not say which steps it holds")
    return steps


def unpack_workspace(data: bytes, dest: Path, *, max_bytes: int) -> None:
    """Unpack an archive into the empty workspace ``dest``, refusing anything unsafe.

    Every member is checked before anything is written. On `UnsafeArchiveError` after the
    writing began, ``dest`` may hold part of the archive (never anything outside it): the
    caller empties it.

    Raises:
        UnsafeArchiveError: unreadable, or a member that is not a regular file, directory or
            symlink, has an absolute or ``..`` name, lies under a symlink member, repeats a
            name, exceeds the size limits, or a symlink that resolves outside ``dest``.
    """
    base = dest.resolve()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = _checked_members(tar, base, max_bytes * MAX_EXPANSION)
            links: list[tuple[str, str]] = []
            for member, rel in members:
                target = os.path.join(base, rel)
                if member.isdir():
                    os.makedirs(target, mode=0o700, exist_ok=True)
                    os.chmod(target, (member.mode & 0o755) | 0o700)
                elif member.isfile():
                    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                    _write_file(tar, member, target)
                else:
                    links.append((rel, member.linkname))
            # Links last: no file or directory above was written through one.
            for rel, linkname in links:
                target = os.path.join(base, rel)
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                os.symlink(linkname, target)
            for rel, linkname in links:
                if not _within(base, os.path.realpath(os.path.join(base, rel))):
                    raise UnsafeArchiveError(
                        f"symlink {rel!r} -> {linkname!r} leads outside the workspace"
                    )
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UnsafeArchiveError(f"the archive could not be unpacked ({exc})") from exc


# --- packing -------------------------------------------------------------------------------


class _CappedBuffer(io.BytesIO):
    """Memory that refuses to grow past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def write(self, data: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self._limit:
            raise WorkspaceTooLargeError(f"the workspace archive is over {self._limit} bytes")
        return super().write(data)


def _info(name: str, kind: bytes, mode: int, mtime: float = 0.0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(mode)
    info.mtime = int(mtime)
    return info


def _add_file(tar: tarfile.TarFile, path: str, rel: str) -> None:
    # O_NOFOLLOW: the file read is the one listed, even if it was swapped for a link since.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        info = _info(rel, tarfile.REGTYPE, st.st_mode, st.st_mtime)
        info.size = st.st_size
        tar.addfile(info, handle)


def _inside_link(base: Path, path: str) -> str | None:
    """The target to store for the symlink ``path``, or ``None`` if it leads outside.

    Inside means both ways a restore checks it: resolved on disk, and read as written.
    """
    real = os.path.realpath(path)
    if not _within(str(base), real):
        return None
    target = os.readlink(path)
    if os.path.isabs(target):
        # The workspace lives elsewhere on the next run: keep the link relative.
        target = os.path.relpath(real, os.path.dirname(path))
    rel = os.path.relpath(path, base)
    written = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if written == ".." or written.startswith("../"):
        return None
    return target


# --- unpacking -----------------------------------------------------------------------------


def _checked_members(
    tar: tarfile.TarFile, base: Path, content_limit: int
) -> list[tuple[tarfile.TarInfo, str]]:
    """Every member with its normalised name, once all of them have passed the checks."""
    checked: list[tuple[tarfile.TarInfo, str]] = []
    names: set[str] = set()
    links: set[str] = set()
    content = 0
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise UnsafeArchiveError(f"the archive has over {MAX_MEMBERS} members")
        rel = _member_name(member)
        if rel is None:
            if not member.isdir():
                raise UnsafeArchiveError(f"member {member.name!r} is not a file name")
            continue  # the root entry
        if rel in names:
            raise UnsafeArchiveError(f"member {rel!r} appears twice")
        names.add(rel)
        if member.issym():
            _check_link(member, rel)
            links.add(rel)
        elif member.isfile():
            content += member.size
            if content > content_limit:
                raise UnsafeArchiveError(f"the archive holds over {content_limit} bytes of files")
        elif not member.isdir():
            raise UnsafeArchiveError(f"member {rel!r} is not a regular file, directory or symlink")
        _second_opinion(member, base)
        checked.append((member, rel))
    for _, rel in checked:
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in links:
                raise UnsafeArchiveError(f"member {rel!r} lies under the symlink {parent!r}")
    return checked


def _member_name(member: tarfile.TarInfo) -> str | None:
    """The member's name relative to the workspace; ``None`` for the root itself."""
    name = member.name
    if "\x00" in name or name.startswith("/") or posixpath.isabs(name):
        raise UnsafeArchiveError(f"member {name!r} has an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} climbs out of the workspace")
    return "/".join(parts) or None


def _check_link(member: tarfile.TarInfo, rel: str) -> None:
    target = member.linkname
    if not target or "\x00" in target or posixpath.isabs(target):
        raise UnsafeArchiveError(f"symlink {rel!r} -> {target!r} is absolute or empty")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"symlink {rel!r} -> {target!r} leads outside the workspace")


def _second_opinion(member: tarfile.TarInfo, base: Path) -> None:
    """Python's own ``data`` filter too, where it exists (3.11.4+): it must agree."""
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return
    try:
        data_filter(member, str(base))
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(f"member {member.name!r} refused: {exc}") from exc


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise UnsafeArchiveError(f"member {member.name!r} has no contents")
    mode = (member.mode & 0o755) | 0o600
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out, source:
        while chunk := source.read(_CHUNK):
            out.write(chunk)
    os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def _within(base: str | Path, path: str) -> bool:
    root = str(base)
    return path == root or path.startswith(root.rstrip("/") + "/")

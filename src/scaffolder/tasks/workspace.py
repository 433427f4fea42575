"""Task workspaces and the one function that keeps every path inside them."""

from __future__ import annotations

import functools
import os
import shutil
import stat
from pathlib import Path

from scaffolder.errors import InputError

_OUTSIDE = "Relative path is not allowed to refer to a directory outside its parent"


def resolve_within(root: Path, user_path: str, *, input_name: str) -> Path:
    """Resolve ``user_path`` against ``root``, refusing anything that leads outside it.

    Absolute paths, ``..`` segments that climb out, and symlinks (anywhere along the path)
    that point outside all raise an `InputError` that names the input. The returned path need
    not exist yet.

    Args:
        root: the directory the path must stay inside (a task workspace).
        user_path: the path as the template or user wrote it.
        input_name: the action input it came from, named in the error.
    """
    if "\x00" in user_path:
        raise InputError(f"Invalid input '{input_name}': path contains a NUL byte")
    base = _real_root(os.fspath(root))
    plain = _plain_path_below(base, user_path)
    if plain is not None:
        return Path(plain)
    candidate = (Path(base) / user_path).resolve()
    if candidate != Path(base) and Path(base) not in candidate.parents:
        raise InputError(f"Invalid input '{input_name}' ({user_path!r}): {_OUTSIDE}")
    return candidate


@functools.lru_cache(maxsize=256)
def _real_root(root: str) -> str:
    # A workspace is a directory we made (never a link) in the configured working
    # directory, so its real path does not change while tasks run there; resolving it once
    # saves an lstat per component of its path on every path a step resolves.
    return os.path.realpath(root)


def _plain_path_below(base: str, user_path: str) -> str | None:
    """``base/user_path`` when it is relative, has no ``..`` and crosses no symlink; else None.

    Such a path cannot lead out of ``base``, and its real path is itself: one lstat per
    component below ``base`` (up to the first that does not exist) instead of `realpath`'s
    lstat of every component from ``/``. Anything else takes the full resolution.
    """
    if user_path.startswith("/"):
        return None
    parts = [part for part in user_path.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    path = base
    exists = True
    for part in parts:
        path = f"{path}/{part}"
        if not exists:
            continue
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            exists = False
            continue
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return path


def is_within(root: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside ``root``."""
    base = root.resolve()
    resolved = path.resolve()
    return resolved == base or base in resolved.parents


def create_workspace(working_directory: Path, name: str) -> Path:
    """Create an empty workspace directory ``<working_directory>/<name>``."""
    path = working_directory / name
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    return path


def remove_workspace(path: Path) -> None:
    """Remove a workspace and the step temporary directories that sit beside it."""
    shutil.rmtree(path, ignore_errors=True)
    parent = path.parent
    prefix = f"{path.name}_step-"
    if parent.is_dir():
        for entry in os.scandir(parent):
            if entry.name.startswith(prefix):
                shutil.rmtree(entry.path, ignore_errors=True)

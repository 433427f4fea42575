"""``fs:readdir``: list directories of the workspace into the step output."""

from __future__ import annotations

import errno
import os

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action, lexical_path
from scaffolder.errors import ScaffolderError

ACTION_ID = "fs:readdir"


def create_fs_readdir_action() -> TemplateAction:
    """Build ``fs:readdir``.

    Outputs ``files`` and ``folders``, each a list of ``{name, path, fullPath}`` with ``path``
    relative to the workspace. With ``recursive`` the order is Node's ``readdir({recursive})``:
    each directory's entries sorted by name, the directories found last read first. Symlinks
    count as files and are not descended into.
    """

    def handler(ctx: ActionContext) -> None:
        root = os.path.abspath(ctx.workspace_path)
        recursive = bool(ctx.input.get("recursive", False))
        files: list[dict[str, str]] = []
        folders: list[dict[str, str]] = []
        for index, local_path in enumerate(ctx.input["paths"]):
            real = ctx.resolve_path(local_path, input_name=f"paths[{index}]")
            shown = lexical_path(ctx.workspace_path, local_path)
            try:
                listing = _read(str(real), shown, recursive=recursive)
            except OSError as exc:
                code = errno.errorcode.get(exc.errno or 0, "Error")
                raise ScaffolderError(
                    f"{code}: {(exc.strerror or '').lower()}, scandir '{shown}'", cause=exc
                ) from exc
            for parent, entry in listing:
                full_path = os.path.join(parent, entry.name)
                element = {
                    "name": entry.name,
                    "path": os.path.relpath(full_path, root),
                    "fullPath": full_path,
                }
                if entry.is_dir(follow_symlinks=False):
                    folders.append(element)
                else:
                    files.append(element)
        ctx.output("files", files)
        ctx.output("folders", folders)

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def _read(real: str, shown: str, *, recursive: bool) -> list[tuple[str, os.DirEntry[str]]]:
    result: list[tuple[str, os.DirEntry[str]]] = []
    stack = [(real, shown, _scan(real))]
    while stack:
        _, shown_dir, entries = stack.pop()
        for entry in entries:
            result.append((shown_dir, entry))
            if recursive and entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, os.path.join(shown_dir, entry.name), _scan(entry.path)))
    return result


def _scan(directory: str) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)

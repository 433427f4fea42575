"""``debug:log``: write a message and, optionally, the workspace listing into the task log."""

from __future__ import annotations

import errno
import os

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action, is_inside, js_json, read_file

ACTION_ID = "debug:log"


def create_debug_log_action() -> TemplateAction:
    """Build ``debug:log``.

    It logs the input as indented JSON, then ``message`` (when non-empty), then with
    ``listWorkspace`` a ``Workspace:`` line listing every file, with their contents for
    ``"with-contents"``. Symlinks are listed but never followed out of the workspace, so the
    listing cannot print files from elsewhere on the host.
    """

    def handler(ctx: ActionContext) -> None:
        ctx.logger.info(js_json(ctx.input, indent=2))
        message = ctx.input.get("message")
        if message:
            ctx.logger.info(message)
        mode = ctx.input.get("listWorkspace")
        if not mode:
            return
        root = os.path.abspath(ctx.workspace_path)
        real_root = os.path.realpath(root)
        lines: list[str] = []
        for entry in _list_files(root):
            rel = os.path.relpath(entry.path, root)
            if mode == "with-contents":
                lines.append(f" - {rel}:\n\n  {_read_text(entry, real_root)}")
            else:
                lines.append(f"  - {rel}")
        ctx.logger.info("Workspace:\n" + "\n".join(lines))

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def _list_files(directory: str) -> list[os.DirEntry[str]]:
    # Backstage's recursiveReadDir: names sorted, each directory expanded where it stands.
    files: list[os.DirEntry[str]] = []
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            files.extend(_list_files(entry.path))
        else:
            files.append(entry)
    return files


def _read_text(entry: os.DirEntry[str], real_root: str) -> str:
    """A listed file's text; "" for what is not a file or leads out of the workspace."""
    if entry.is_symlink():
        real = os.path.realpath(entry.path)
        if not is_inside(real_root, real) or not os.path.isfile(real):
            return ""
        path, flags = real, 0
    elif entry.is_file(follow_symlinks=False):
        # Reached by a walk that follows no link, so inside the workspace: no realpath (one
        # lstat per path component). O_NOFOLLOW: not through a link put there since.
        path, flags = entry.path, os.O_NOFOLLOW
    else:
        return ""
    try:
        data = read_file(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link after the listing
            return ""
        raise
    return data.decode("utf-8", errors="replace")

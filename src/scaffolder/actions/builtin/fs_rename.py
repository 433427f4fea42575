"""``fs:rename``: move files and directories within the workspace."""

from __future__ import annotations

import os
import shutil
from typing import Any

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action, lexical_path
from scaffolder.errors import InputError, ScaffolderError

ACTION_ID = "fs:rename"


def create_fs_rename_action() -> TemplateAction:
    """Build ``fs:rename``.

    Each ``{from, to, overwrite}`` entry is moved as fs-extra's ``move`` does: the destination's
    parent directories are created, and an existing destination is an error unless
    ``overwrite`` is set. Both paths must stay inside the workspace.
    """

    def handler(ctx: ActionContext) -> None:
        for index, item in enumerate(ctx.input["files"]):
            _rename_one(ctx, index, item)

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def _rename_one(ctx: ActionContext, index: int, item: Any) -> None:
    if not isinstance(item, dict) or not item.get("from") or not item.get("to"):
        raise InputError("each file must have a from and to property")
    real_source = ctx.resolve_path(item["from"], input_name=f"files[{index}].from")
    real_dest = ctx.resolve_path(item["to"], input_name=f"files[{index}].to")
    # The lexical paths are what gets moved, so a symlink is renamed rather than its target.
    source = lexical_path(ctx.workspace_path, item["from"])
    dest = lexical_path(ctx.workspace_path, item["to"])
    try:
        _move(
            source,
            dest,
            real_source=str(real_source),
            real_dest=str(real_dest),
            overwrite=bool(item.get("overwrite", False)),
        )
    except (OSError, ScaffolderError) as exc:
        reason = exc.message if isinstance(exc, ScaffolderError) else str(exc)
        ctx.logger.error(f"Failed to rename file {source} to {dest}: {reason}")
        if isinstance(exc, ScaffolderError):
            raise
        raise ScaffolderError(reason, cause=exc) from exc
    ctx.logger.info(f"File {source} renamed to {dest} successfully")


def _move(source: str, dest: str, *, real_source: str, real_dest: str, overwrite: bool) -> None:
    if not os.path.lexists(source):
        raise ScaffolderError(f"ENOENT: no such file or directory, lstat '{source}'")
    if real_source == real_dest:
        raise ScaffolderError("Source and destination must not be the same.")
    if os.path.isdir(source) and real_dest.startswith(real_source + os.sep):
        raise ScaffolderError(f"Cannot move '{source}' to a subdirectory of itself, '{dest}'.")
    if os.path.lexists(dest):
        if not overwrite:
            raise ScaffolderError("dest already exists.")
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)
        else:
            os.unlink(dest)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.move(source, dest)

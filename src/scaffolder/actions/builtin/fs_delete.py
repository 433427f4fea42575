"""``fs:delete``: remove files and directories from the workspace, by path or by glob."""

from __future__ import annotations

import os
import shutil

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import (
    build_action,
    compile_glob,
    has_glob_magic,
    lexical_path,
    walk_breadth_first,
)
from scaffolder.errors import ScaffolderError

ACTION_ID = "fs:delete"


def create_fs_delete_action() -> TemplateAction:
    """Build ``fs:delete``.

    Each entry of ``files`` is a path or a glob relative to the workspace; wildcards match
    names that start with a dot. A plain path removes that file, symlink or whole directory
    (``.`` empties the workspace). A glob removes the files it matches, as Backstage's
    ``globby`` does (directories are not matched, so they stay, emptied); symlinks are removed
    themselves and never followed. A pattern that leads outside the workspace, through ``..``,
    an absolute path or a symlink, is an `InputError` and nothing is removed for it.
    """

    def handler(ctx: ActionContext) -> None:
        root = os.path.abspath(ctx.workspace_path)
        for index, pattern in enumerate(ctx.input["files"]):
            input_name = f"files[{index}]"
            # Checked as a literal path first: this refuses `..`, absolute paths and symlinks
            # that lead out, whatever the wildcards would match.
            ctx.resolve_path(pattern, input_name=input_name)
            if has_glob_magic(pattern):
                targets = _glob(ctx, pattern, input_name=input_name)
            else:
                target = lexical_path(ctx.workspace_path, pattern)
                if os.path.normpath(target) == root:
                    targets = [e.path for e in sorted(os.scandir(root), key=lambda e: e.name)]
                elif os.path.lexists(target):
                    targets = [target]
                else:
                    targets = []
            for target in targets:
                _remove(ctx, target)

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def _glob(ctx: ActionContext, pattern: str, *, input_name: str) -> list[str]:
    segments = os.path.normpath(pattern).split("/")
    static: list[str] = []
    for segment in segments:
        if has_glob_magic(segment):
            break
        static.append(segment)
    base_rel = "/".join(static) or "."
    base = ctx.resolve_path(base_rel, input_name=input_name)
    if not base.is_dir():
        return []
    regex = compile_glob("/".join(segments[len(static) :]))
    base_shown = lexical_path(ctx.workspace_path, base_rel)
    return [
        os.path.join(base_shown, rel)
        for rel, entry in walk_breadth_first(str(base))
        if not entry.is_dir(follow_symlinks=False) and regex.fullmatch(rel)
    ]


def _remove(ctx: ActionContext, path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        ctx.logger.error(f"Failed to delete file {path}: {exc.strerror or exc}")
        raise ScaffolderError(f"Failed to delete file {path}: {exc}", cause=exc) from exc
    ctx.logger.info(f"File {path} deleted successfully")

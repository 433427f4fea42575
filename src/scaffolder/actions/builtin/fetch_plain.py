"""``fetch:plain``: copy a directory tree from the template location into the workspace."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import (
    ConfinedTree,
    build_action,
    is_inside,
    node_error,
    place_symlink,
    resolve_fetch_source,
    safe_link_text,
    walk_breadth_first,
)
from scaffolder.errors import InputError, ScaffolderError

ACTION_ID = "fetch:plain"


def create_fetch_plain_action() -> TemplateAction:
    """Build ``fetch:plain``.

    Copies the tree at ``url`` into ``targetPath`` (default the workspace root) as fs-extra's
    ``copy`` does: existing files are overwritten, file modes kept. Symlinks are copied as
    links only when they stay inside both the fetched tree and the workspace; others are
    skipped with a warning, so nothing from outside the template reaches the workspace.
    """

    def handler(ctx: ActionContext) -> None:
        ctx.logger.info("Fetching plain content from remote URL")
        target_path = ctx.input.get("targetPath")
        output = ctx.resolve_path(
            "./" if target_path is None else target_path, input_name="targetPath"
        )
        source = resolve_fetch_source(ctx.input["url"], ctx.template_info, input_name="url")
        copy_tree(ctx, source, output)

    return build_action(ACTION_ID, handler, supports_dry_run=True)


def copy_tree(ctx: ActionContext, source: Path, output: Path) -> None:
    """Copy the tree at ``source`` over ``output`` (a real path inside the workspace)."""
    if not source.is_dir():
        if not source.exists():
            raise ScaffolderError(f"ENOENT: no such file or directory, lstat '{source}'")
        if output.is_dir():
            raise ScaffolderError(
                f"Cannot overwrite directory '{output}' with non-directory '{source}'."
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, output)
        shutil.copymode(source, output)
        return
    source_root = os.path.realpath(source)
    if is_inside(source_root, os.path.realpath(output)):
        raise InputError(f"Cannot copy '{source}' to a subdirectory of itself, '{output}'.")
    tree = ConfinedTree(ctx.workspace_path)
    out_rel = os.path.relpath(os.path.realpath(output), tree.root)
    os.makedirs(output, exist_ok=True)
    for rel, entry in walk_breadth_first(source_root):
        ctx.signal.raise_if_cancelled()
        dest = tree.resolve(os.path.join(out_rel, rel))
        if dest is None:
            raise InputError(
                f"Invalid input 'targetPath': '{rel}' would be written outside the workspace"
            )
        try:
            _copy_entry(ctx, entry, rel, dest, source_root, tree.root)
        except OSError as exc:
            raise node_error(exc, "copy", entry.path, dest) from exc


def _copy_entry(
    ctx: ActionContext,
    entry: os.DirEntry[str],
    rel: str,
    dest: str,
    source_root: str,
    dest_root: str,
) -> None:
    if entry.is_symlink():
        text = safe_link_text(entry.path, source_root, dest, dest_root)
        if text is None:
            ctx.logger.warn(f"Skipping symbolic link {rel}: it points outside the template.")
        else:
            place_symlink(text, dest)
        return
    mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
    if entry.is_dir(follow_symlinks=False):
        if not os.path.isdir(dest):
            os.mkdir(dest)
            os.chmod(dest, mode)
    elif entry.is_file(follow_symlinks=False):
        if os.path.isdir(dest):
            raise ScaffolderError(
                f"Cannot overwrite directory '{dest}' with non-directory '{entry.path}'."
            )
        shutil.copyfile(entry.path, dest)
        os.chmod(dest, mode)

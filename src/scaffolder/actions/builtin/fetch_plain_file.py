"""``fetch:plain:file``: copy one file from the template location into the workspace."""

from __future__ import annotations

import shutil

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action, node_error, resolve_fetch_source
from scaffolder.errors import ScaffolderError

ACTION_ID = "fetch:plain:file"


def create_fetch_plain_file_action() -> TemplateAction:
    """Build ``fetch:plain:file``.

    Copies the file at ``url`` to ``targetPath`` (parent directories created, mode kept,
    an existing file overwritten), as ``fs.copyFile`` does upstream.
    """

    def handler(ctx: ActionContext) -> None:
        ctx.logger.info("Fetching plain content from remote URL")
        output = ctx.resolve_path(ctx.input["targetPath"], input_name="targetPath")
        source = resolve_fetch_source(ctx.input["url"], ctx.template_info, input_name="url")
        if output.is_dir() or source.is_dir():
            raise ScaffolderError(
                f"EISDIR: illegal operation on a directory, copyfile '{source}' -> '{output}'"
            )
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, output)
            shutil.copymode(source, output)
        except OSError as exc:
            raise node_error(exc, "copyfile", str(source), str(output)) from exc

    return build_action(ACTION_ID, handler, supports_dry_run=True)

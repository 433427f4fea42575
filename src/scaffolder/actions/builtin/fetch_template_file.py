"""``fetch:template:file``: render one template file into the workspace."""

from __future__ import annotations

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import (
    build_action,
    lexical_path,
    node_error,
    resolve_fetch_source,
    with_meta,
)
from scaffolder.tasks.templating import Templater

ACTION_ID = "fetch:template:file"


def create_fetch_template_file_action(*, templater: Templater) -> TemplateAction:
    """Build ``fetch:template:file``.

    Renders the file at ``url`` with ``{"values": values}`` (``{"cookiecutter": values}`` in
    cookiecutter mode) and writes it to ``targetPath``; an existing file is kept unless
    ``replace``.

    Args:
        templater: renders the contents.
    """

    def handler(ctx: ActionContext) -> None:
        ctx.logger.info("Fetching template file content from remote URL")
        target_path = ctx.input["targetPath"]
        output = ctx.resolve_path(target_path, input_name="targetPath")
        if output.exists() and not ctx.input.get("replace"):
            ctx.logger.info(f"File {target_path} already exists in workspace, not replacing.")
            return
        source = resolve_fetch_source(ctx.input["url"], ctx.template_info, input_name="url")
        try:
            contents = source.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            raise node_error(exc, "open", str(source)) from exc

        cookiecutter_compat = bool(ctx.input.get("cookiecutterCompat"))
        values = ctx.input.get("values")
        ctx.logger.info(with_meta("Processing template file with input values", values))
        result = templater.render_string(
            contents,
            {"cookiecutter" if cookiecutter_compat else "values": values},
            cookiecutter_compat=cookiecutter_compat,
            trim_blocks=bool(ctx.input.get("trimBlocks")),
            lstrip_blocks=bool(ctx.input.get("lstripBlocks")),
            name=ctx.input["url"],
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(result, encoding="utf-8")
        ctx.logger.info(
            f"Template file has been written to {lexical_path(ctx.workspace_path, target_path)}"
        )

    return build_action(ACTION_ID, handler, supports_dry_run=True)

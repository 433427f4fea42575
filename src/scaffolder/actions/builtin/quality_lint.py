"""``quality:lint``: run the template quality gate (``scaffolder lint``) on the workspace."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.errors import InputError
from scaffolder.lint import CHECKS, DEFAULT_REGION, Level, LintOptions, parse_checks, run_lint

ACTION_ID = "quality:lint"

_LOG_LEVELS: Mapping[Level, str] = {
    Level.ERROR: "error",
    Level.WARNING: "warn",
    Level.INFO: "info",
}

_FINDING_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["tool", "file", "line", "column", "level", "code", "message"],
    "properties": {
        "tool": {"type": "string"},
        "file": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "level": {"type": "string", "enum": [level.value for level in Level]},
        "code": {"type": "string"},
        "message": {"type": "string"},
    },
}

INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "path": {
            "title": "Path",
            "description": "Directory to check, relative to the workspace.",
            "type": "string",
            "default": "./",
        },
        "checks": {
            "title": "Checks",
            "description": "Only these checks (default: all).",
            "type": "array",
            "items": {"type": "string", "enum": list(CHECKS)},
            "minItems": 1,
        },
        "failOnFindings": {
            "title": "Fail on findings",
            "description": "Fail the step when there are errors or warnings (infos never fail).",
            "type": "boolean",
            "default": True,
        },
        "warningsOk": {
            "title": "Warnings OK",
            "description": "With failOnFindings, fail on errors only.",
            "type": "boolean",
            "default": False,
        },
        "region": {
            "title": "AWS region",
            "description": "Region cfn-lint validates CloudFormation templates against.",
            "type": "string",
            "default": DEFAULT_REGION,
        },
    },
}

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "findings": {"type": "array", "items": _FINDING_SCHEMA},
        "count": {"type": "integer"},
    },
}

_EXAMPLE = """\
steps:
  - id: lint
    name: Quality gate
    action: quality:lint
    input:
      path: ./
      checks: [cfn, hadolint, zizmor]
"""


def create_quality_lint_action() -> TemplateAction:
    """Build ``quality:lint``.

    It runs the checks of ``scaffolder lint`` (cfn-lint, hadolint, yamllint, zizmor, catalog
    entity rules) on a directory of the workspace, logs each finding, and outputs them as
    ``findings`` with their ``count``. With ``failOnFindings`` (the default) the step fails
    with an `InputError` listing the findings at level error or warning. The linters only read
    the workspace, so the action runs in dry runs too; a cancel terminates them.
    """

    def handler(ctx: ActionContext) -> None:
        user_path = str(ctx.input.get("path", "./"))
        root = ctx.resolve_path(user_path, input_name="path")
        if not root.is_dir():
            raise InputError(f"Invalid input 'path' ({user_path!r}): not a directory")
        options = LintOptions(
            checks=parse_checks(ctx.input.get("checks") or CHECKS),
            region=str(ctx.input.get("region") or DEFAULT_REGION),
        )
        report = run_lint(root, options, watcher=ctx.signal)
        ctx.signal.raise_if_cancelled()
        for finding in report.findings:
            ctx.logger.log(_LOG_LEVELS[finding.level], finding.to_text())
        ctx.logger.info(report.summary())
        ctx.output("findings", [finding.to_json() for finding in report.findings])
        ctx.output("count", len(report.findings))
        failing = report.failing(warnings_ok=bool(ctx.input.get("warningsOk", False)))
        if ctx.input.get("failOnFindings", True) and failing:
            listing = "\n".join(finding.to_text() for finding in failing)
            raise InputError(f"Quality gate failed with {len(failing)} findings:\n{listing}")

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=(
            "Runs the template quality gate (cfn-lint, hadolint, yamllint, zizmor and catalog "
            "entity validation) on a workspace directory and fails on its findings."
        ),
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(ActionExample(description="Lint the whole workspace", example=_EXAMPLE),),
        supports_dry_run=True,
    )

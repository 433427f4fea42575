"""The template quality gate: ``scaffolder lint DIR`` and the ``quality:lint`` action.

It walks a directory (a cookiecutter is rendered with its defaults first) and runs, offline:
cfn-lint on CloudFormation templates, hadolint on Dockerfiles, yamllint on YAML files, zizmor
on GitHub workflows, and our entity validation on catalog files. Every finding has one shape
(`Finding`) and one of three levels (`Level`).
"""

from __future__ import annotations

from scaffolder.lint.checks import (
    CHECKS,
    DEFAULT_REGION,
    DEFAULT_TIMEOUT,
    LintOptions,
    parse_checks,
    run_lint,
)
from scaffolder.lint.model import INSTALL_HINT, Finding, Level, Report

__all__ = [
    "CHECKS",
    "DEFAULT_REGION",
    "DEFAULT_TIMEOUT",
    "INSTALL_HINT",
    "Finding",
    "Level",
    "LintOptions",
    "Report",
    "parse_checks",
    "run_lint",
]

"""The in-process checks: yamllint on every YAML file, and our entity rules on catalog files."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from scaffolder.catalog.validation import validate_entity
from scaffolder.errors import InputError
from scaffolder.lint.discovery import Target
from scaffolder.lint.external import ToolContext, ToolFailure
from scaffolder.lint.model import INSTALL_HINT, Finding, Level, tool_finding

#: The config used when the directory has no ``.yamllint``: yamllint's ``relaxed`` preset
#: with lines up to 120 characters, and ``truthy`` checking values but not keys, so that a
#: GitHub workflow's ``on:`` passes while ``enabled: yes`` is still reported.
DEFAULT_YAMLLINT_CONFIG = """\
extends: relaxed
rules:
  line-length:
    max: 120
    level: warning
  truthy:
    allowed-values: ["true", "false"]
    check-keys: false
    level: warning
"""

#: Where yamllint looks for a project config, in its own order.
YAMLLINT_CONFIG_FILES = (".yamllint", ".yamllint.yaml", ".yamllint.yml")

_BUILTIN_YAMLLINT_CONFIGS = frozenset({"default", "relaxed"})
_YAMLLINT_LEVELS = {"error": Level.ERROR, "warning": Level.WARNING}
_CATALOG_HELP = re.compile(r"\s*To learn more about catalog file format.*$", re.DOTALL)
_FIELD_PATTERNS = (
    re.compile(r'^"(?P<path>[^"]+)" is not valid'),
    re.compile(r"^/(?P<path>[\w/]+) must"),
    re.compile(r"^Unknown field (?P<path>\S+)"),
    re.compile(r"^Entity (?P<path>[\w.]+)"),
)


def run_yamllint(files: Sequence[Target], ctx: ToolContext) -> list[Finding]:
    """yamllint over YAML files, with the project's ``.yamllint`` or `DEFAULT_YAMLLINT_CONFIG`."""
    try:
        from yamllint import linter  # type: ignore[import-untyped]
        from yamllint.config import (  # type: ignore[import-untyped]
            YamlLintConfig,
            YamlLintConfigError,
        )
    except ImportError:
        message = f"yamllint is not installed; run: {INSTALL_HINT}"
        raise ToolFailure("not-installed", message) from None
    config_file = next((p for n in YAMLLINT_CONFIG_FILES if (p := ctx.root / n).is_file()), None)
    try:
        if config_file is None:
            config = YamlLintConfig(content=DEFAULT_YAMLLINT_CONFIG)
        else:
            config = YamlLintConfig(content=_anchor_config(config_file, ctx.root))
    except (YamlLintConfigError, OSError, yaml.YAMLError) as exc:
        name = config_file.name if config_file else "default config"
        raise ToolFailure("config", f"invalid yamllint config {name}: {exc}") from exc
    deadline = time.monotonic() + ctx.timeout
    findings = []
    for target in files:
        if time.monotonic() > deadline:
            findings.append(_timeout("yamllint", ctx))
            break
        try:
            content = target.path.read_bytes()
        except OSError as exc:
            findings.append(_unreadable("yamllint", target, exc))
            continue
        for problem in linter.run(content, config, target.display):
            findings.append(
                Finding(
                    file=target.display,
                    line=int(problem.line),
                    column=int(problem.column),
                    tool="yamllint",
                    level=_YAMLLINT_LEVELS.get(str(problem.level), Level.ERROR),
                    code=str(problem.rule or "syntax"),
                    message=_strip_rule(str(problem.desc), problem.rule),
                )
            )
    return findings


def _anchor_config(config_file: Path, root: Path) -> str:
    # yamllint resolves `extends` and `ignore-from-file` against the working directory, which
    # a threaded server cannot change; resolve them against the linted directory instead.
    conf = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    if not isinstance(conf, dict):
        return config_file.read_text(encoding="utf-8")
    extends = conf.get("extends")
    if isinstance(extends, str) and extends not in _BUILTIN_YAMLLINT_CONFIGS:
        conf["extends"] = str(root / extends)
    ignore_from = conf.get("ignore-from-file")
    if isinstance(ignore_from, str):
        conf["ignore-from-file"] = str(root / ignore_from)
    elif isinstance(ignore_from, list):
        conf["ignore-from-file"] = [str(root / str(p)) for p in ignore_from]
    return yaml.safe_dump(conf)


def _strip_rule(desc: str, rule: Any) -> str:
    suffix = f" ({rule})" if rule else " (syntax)"
    return desc[: -len(suffix)] if desc.endswith(suffix) else desc


def run_catalog(files: Sequence[Target], ctx: ToolContext) -> list[Finding]:
    """Every document of a catalog file through `validate_entity`, at the line it names."""
    deadline = time.monotonic() + ctx.timeout
    findings: list[Finding] = []
    for target in files:
        if time.monotonic() > deadline:
            findings.append(_timeout("catalog", ctx))
            break
        try:
            text = target.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            findings.append(_unreadable("catalog", target, exc))
            continue
        findings.extend(_check_catalog_file(target.display, text))
    return findings


def _check_catalog_file(display: str, text: str) -> list[Finding]:
    findings = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            entity = loader.construct_document(node)
            if entity is None:
                continue
            try:
                validate_entity(entity)
            except InputError as exc:
                message = _CATALOG_HELP.sub("", exc.message)
                line, column = _locate(node, message)
                findings.append(
                    Finding(
                        file=display,
                        line=line,
                        column=column,
                        tool="catalog",
                        level=Level.ERROR,
                        code="invalid-entity",
                        message=message,
                    )
                )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        findings.append(
            Finding(
                file=display,
                line=mark.line + 1 if mark else 0,
                column=mark.column + 1 if mark else 0,
                tool="catalog",
                level=Level.ERROR,
                code="yaml-syntax",
                message=f"cannot parse: {getattr(exc, 'problem', None) or exc}",
            )
        )
    finally:
        loader.dispose()
    return findings


def _locate(node: yaml.Node, message: str) -> tuple[int, int]:
    """The line and column of the field a validation message names, else of the entity."""
    path: list[str] = []
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(message)
        if match:
            path = re.split(r"[./]", match["path"])
            break
    located: yaml.Node = node
    here: yaml.Node = node
    for key in path:
        if not isinstance(here, yaml.MappingNode):
            break
        entry = next((kv for kv in here.value if kv[0].value == key), None)
        if entry is None:
            break
        located, here = entry
    return located.start_mark.line + 1, located.start_mark.column + 1


def _timeout(tool: str, ctx: ToolContext) -> Finding:
    return tool_finding(tool, "timeout", f"{tool} did not finish within {ctx.timeout:g} s")


def _unreadable(tool: str, target: Target, exc: Exception) -> Finding:
    return Finding(
        file=target.display,
        line=0,
        column=0,
        tool=tool,
        level=Level.ERROR,
        code="unreadable",
        message=f"cannot read: {exc}",
    )

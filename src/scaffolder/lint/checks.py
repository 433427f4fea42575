"""The gate: find the files, run every selected check on them in parallel, collect a report."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from scaffolder.errors import InputError
from scaffolder.lint.discovery import COOKIECUTTER_JSON, Target, Targets, discover
from scaffolder.lint.external import (
    ProcessWatcher,
    ToolContext,
    ToolFailure,
    run_cfn_lint,
    run_hadolint,
    run_zizmor,
)
from scaffolder.lint.model import CheckRun, Finding, Level, Report, sort_findings, tool_finding
from scaffolder.lint.render import render_defaults
from scaffolder.lint.yaml_checks import run_catalog, run_yamllint

log = logging.getLogger(__name__)

#: The region cfn-lint validates resource types and properties against.
DEFAULT_REGION = "us-east-1"

#: Seconds one tool may run before it is stopped and reported as an error finding.
DEFAULT_TIMEOUT = 120.0

#: Checks run at once; the linters are child processes, so threads are enough.
DEFAULT_JOBS = max(2, os.cpu_count() or 2)


@dataclass(frozen=True, kw_only=True)
class Check:
    """One check of the gate.

    Attributes:
        name: what ``--only`` and the action's ``checks`` call it.
        tool: the ``tool`` of its findings.
        select: the files it looks at.
        run: looks at them; raises `ToolFailure` when the tool cannot run.
    """

    name: str
    tool: str
    select: Callable[[Targets], tuple[Target, ...]]
    run: Callable[[Sequence[Target], ToolContext], list[Finding]]


#: Every check, in the order reports list them (slowest first, so it starts first).
CHECKS: Mapping[str, Check] = {
    c.name: c
    for c in (
        Check(name="cfn", tool="cfn-lint", select=lambda t: t.cloudformation, run=run_cfn_lint),
        Check(name="hadolint", tool="hadolint", select=lambda t: t.dockerfiles, run=run_hadolint),
        Check(name="zizmor", tool="zizmor", select=lambda t: t.workflows, run=run_zizmor),
        Check(name="yamllint", tool="yamllint", select=lambda t: t.yaml, run=run_yamllint),
        Check(name="catalog", tool="catalog", select=lambda t: t.catalog, run=run_catalog),
    )
}

_ALIASES = {"cfn-lint": "cfn", "cloudformation": "cfn", "entities": "catalog"}


@dataclass(frozen=True, kw_only=True)
class LintOptions:
    """How the gate runs.

    Attributes:
        checks: names from `CHECKS` to run (default: all).
        region: AWS region for cfn-lint.
        timeout: seconds each tool may run.
        render: render a cookiecutter (a directory with ``cookiecutter.json``) with its
            defaults and check the generated files rather than the Jinja sources.
        jobs: checks run at once.
    """

    checks: tuple[str, ...] = field(default=tuple(CHECKS))
    region: str = DEFAULT_REGION
    timeout: float = DEFAULT_TIMEOUT
    render: bool = True
    jobs: int = DEFAULT_JOBS


def parse_checks(names: Iterable[str]) -> tuple[str, ...]:
    """Normalise check names (``cfn-lint`` is ``cfn``), in `CHECKS` order.

    Raises:
        InputError: a name is not a check.
    """
    wanted = set()
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        name = _ALIASES.get(name, name)
        if name not in CHECKS:
            raise InputError(f"Unknown check {raw!r}; choose from {', '.join(CHECKS)}")
        wanted.add(name)
    if not wanted:
        raise InputError(f"No check selected; choose from {', '.join(CHECKS)}")
    return tuple(name for name in CHECKS if name in wanted)


def run_lint(
    root: Path, options: LintOptions | None = None, *, watcher: ProcessWatcher | None = None
) -> Report:
    """Run the gate on the directory ``root``.

    Tools that cannot run (not installed, timed out, crashed) become error findings, so a
    gate never passes by skipping a check that had files to look at.

    Args:
        root: the directory to check.
        options: which checks, region, timeout, rendering; defaults to `LintOptions()`.
        watcher: told about each child process (an action's cancel signal).
    """
    options = options or LintOptions()
    root = root.absolute()
    ctx = ToolContext(root=root, region=options.region, timeout=options.timeout, watcher=watcher)
    runs: list[CheckRun] = []
    with (
        tempfile.TemporaryDirectory(prefix="scaffolder-lint-") as scratch,
        ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool,
    ):
        found = discover(root, find_cookiecutters=options.render)
        targets = found.targets
        renders = [
            pool.submit(_render, root, template, Path(scratch, str(index)), ctx)
            for index, template in enumerate(found.cookiecutters)
        ]
        for future in renders:
            rendered, run = future.result()
            targets += rendered
            runs.append(run)
        selected = [(CHECKS[name], CHECKS[name].select(targets)) for name in options.checks]
        futures = [pool.submit(_run_check, check, files, ctx) for check, files in selected]
        runs.extend(f.result() for f in futures)
    return Report(
        findings=sort_findings([f for run in runs for f in run.findings]),
        runs=tuple(runs),
        files=len({target.display for _, files in selected for target in files}),
    )


def _render(root: Path, template: Path, output: Path, ctx: ToolContext) -> tuple[Targets, CheckRun]:
    """Render one cookiecutter with its defaults; its files, named as the template names them."""
    started = time.monotonic()
    rel = template.relative_to(root).as_posix()
    targets = Targets()
    findings: tuple[Finding, ...] = ()
    try:
        project, placeholder = render_defaults(template, output, ctx)
    except ToolFailure as exc:
        findings = (
            Finding(
                file=str(PurePosixPath(rel, COOKIECUTTER_JSON)),
                line=0,
                column=0,
                tool="cookiecutter",
                level=Level.ERROR,
                code=exc.code,
                message=f"{exc.message}; its templated files were not checked",
            ),
        )
    else:
        targets = discover(project, prefix=str(PurePosixPath(rel, placeholder))).targets
    seconds = time.monotonic() - started
    return targets, CheckRun(check="render", files=1, seconds=seconds, findings=findings)


def _run_check(check: Check, files: Sequence[Target], ctx: ToolContext) -> CheckRun:
    if not files:
        return CheckRun(check=check.name, files=0, seconds=0.0)
    started = time.monotonic()
    try:
        findings = tuple(check.run(files, ctx))
    except ToolFailure as exc:
        findings = (tool_finding(check.tool, exc.code, exc.message),)
    except Exception as exc:
        # A bug in a parser must fail the gate loudly, not let it pass.
        log.exception("lint check %s crashed", check.name)
        findings = (tool_finding(check.tool, "crashed", f"{type(exc).__name__}: {exc}"),)
    return CheckRun(
        check=check.name, files=len(files), seconds=time.monotonic() - started, findings=findings
    )

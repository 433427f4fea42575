"""The checks that run a linter binary: cfn-lint, hadolint and zizmor.

Each runs once over all its files, in a child process with a timeout, from the linted
directory (so the project's ``.cfnlintrc``, ``.hadolint.yaml`` and ``zizmor.yml`` apply), and
its machine-readable output is turned into `Finding` records.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scaffolder.lint.discovery import Target
from scaffolder.lint.model import INSTALL_HINT, Finding, Level

#: Environment variables a linter child keeps; the rest (tokens, cloud credentials) stay out,
#: since the linted files may come from a template nobody reviewed.
_KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")

_CFN_LINE = re.compile(
    r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+):\d+:\d+:(?P<code>[EWI]\d+):(?P<message>.*)$"
)
_CFN_LEVELS: Mapping[str, Level] = {"E": Level.ERROR, "W": Level.WARNING, "I": Level.INFO}
_HADOLINT_LEVELS: Mapping[str, Level] = {
    "error": Level.ERROR,
    "warning": Level.WARNING,
    "info": Level.INFO,
    "style": Level.INFO,
}
_ZIZMOR_LEVELS: Mapping[str, Level] = {
    "high": Level.ERROR,
    "medium": Level.WARNING,
    "low": Level.WARNING,
    "informational": Level.INFO,
}
_STDERR_TAIL = 500
_KILL_GRACE = 5.0


class ProcessWatcher(Protocol):
    """Told about each child process, so that a cancelled task can terminate it."""

    def attach(self, child: subprocess.Popen[str]) -> None: ...

    def detach(self, child: subprocess.Popen[str]) -> None: ...


class ToolFailure(Exception):
    """A linter could not run or did not finish; reported as one error finding for the tool."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """What every check run needs besides its files.

    Attributes:
        root: the linted directory; linters run from it.
        region: the AWS region cfn-lint validates templates against.
        timeout: seconds one linter run may take.
        watcher: told about child processes (the action's cancel signal), if any.
    """

    root: Path
    region: str
    timeout: float
    watcher: ProcessWatcher | None = None


def find_executable(name: str) -> str | None:
    """The linter ``name`` installed beside this Python (the venv's ``bin``), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def run_tool(name: str, args: Sequence[str], ctx: ToolContext) -> tuple[int, str, str]:
    """Run linter ``name`` with ``args``; return its exit status, stdout and stderr.

    Raises:
        ToolFailure: the linter is not installed, or did not finish within the timeout.
    """
    executable = find_executable(name)
    if executable is None:
        raise ToolFailure("not-installed", f"{name} is not installed; run: {INSTALL_HINT}")
    return run_process(name, [executable, *args], ctx)


def run_process(name: str, argv: Sequence[str], ctx: ToolContext) -> tuple[int, str, str]:
    """Run ``argv`` from the linted directory with a scrubbed environment and the timeout.

    Raises:
        ToolFailure: the process cannot start, or did not finish within the timeout (it is
            killed then).
    """
    env = {key: os.environ[key] for key in _KEPT_ENV if key in os.environ}
    try:
        child = subprocess.Popen(
            list(argv),
            cwd=ctx.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise ToolFailure("failed", f"cannot run {name}: {exc}") from exc
    if ctx.watcher is not None:
        ctx.watcher.attach(child)
    try:
        stdout, stderr = child.communicate(timeout=ctx.timeout)
    except subprocess.TimeoutExpired:
        _kill(child)
        raise ToolFailure("timeout", f"{name} did not finish within {ctx.timeout:g} s") from None
    finally:
        if ctx.watcher is not None:
            ctx.watcher.detach(child)
    return child.returncode, stdout, stderr


def _kill(child: subprocess.Popen[str]) -> None:
    child.kill()
    try:
        child.communicate(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired:
        # A grandchild still holds the pipes open; stop reading rather than wait for it.
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
        child.wait()


def failed(name: str, status: int, stderr: str) -> ToolFailure:
    """A `ToolFailure` for a process that exited badly, with the end of what it said."""
    tail = stderr.strip()[-_STDERR_TAIL:] or "no output"
    return ToolFailure("failed", f"{name} exited with status {status}: {tail}")


def _display(raw: str, targets: Mapping[str, str], root: Path) -> str:
    if raw in targets:
        return targets[raw]
    path = Path(raw)
    absolute = path if path.is_absolute() else root / path
    return targets.get(str(absolute), raw)


def run_cfn_lint(files: Sequence[Target], ctx: ToolContext) -> list[Finding]:
    """cfn-lint over CloudFormation templates (``--format parseable``)."""
    names = {str(t.path): t.display for t in files}
    args = ["--format", "parseable", "--regions", ctx.region, "--", *names]
    status, stdout, stderr = run_tool("cfn-lint", args, ctx)
    findings = []
    for line in stdout.splitlines():
        match = _CFN_LINE.match(line)
        if match is None:
            continue
        code = match["code"]
        findings.append(
            Finding(
                file=_display(match["file"], names, ctx.root),
                line=int(match["line"]),
                column=int(match["column"]),
                tool="cfn-lint",
                level=_CFN_LEVELS[code[0]],
                code=code,
                message=match["message"].strip(),
            )
        )
    # Its status is a bit mask of the levels found; bit 0 means cfn-lint itself failed.
    if status & 1 or (status and not findings):
        raise failed("cfn-lint", status, stderr)
    return findings


def run_hadolint(files: Sequence[Target], ctx: ToolContext) -> list[Finding]:
    """hadolint over Dockerfiles (``--format json``)."""
    names = {str(t.path): t.display for t in files}
    status, stdout, stderr = run_tool(
        "hadolint", ["--format", "json", "--no-fail", "--no-color", *names], ctx
    )
    try:
        results: list[dict[str, Any]] = json.loads(stdout or "[]")
    except json.JSONDecodeError:
        raise failed("hadolint", status, stderr or stdout) from None
    if status and not results:
        raise failed("hadolint", status, stderr)
    return [
        Finding(
            file=_display(str(r["file"]), names, ctx.root),
            line=int(r.get("line") or 0),
            column=int(r.get("column") or 0),
            tool="hadolint",
            level=_HADOLINT_LEVELS.get(str(r.get("level")), Level.ERROR),
            code=str(r.get("code", "")),
            message=str(r.get("message", "")),
        )
        for r in results
    ]


def run_zizmor(files: Sequence[Target], ctx: ToolContext) -> list[Finding]:
    """zizmor over GitHub Actions workflows (``--offline --format json``)."""
    names = {str(t.path): t.display for t in files}
    args = ["--offline", "--format", "json", "--no-progress", "--no-exit-codes", "--", *names]
    status, stdout, stderr = run_tool("zizmor", args, ctx)
    try:
        results: list[dict[str, Any]] = json.loads(stdout) if stdout.strip() else []
    except json.JSONDecodeError:
        raise failed("zizmor", status, stderr or stdout) from None
    if status:
        raise failed("zizmor", status, stderr)
    findings = []
    for result in results:
        if result.get("ignored"):
            continue
        location = _zizmor_primary(result.get("locations") or [])
        symbolic = location.get("symbolic", {})
        start = location.get("concrete", {}).get("location", {}).get("start_point", {})
        path = symbolic.get("key", {}).get("Local", {}).get("verbatim_path", "")
        severity = str(result.get("determinations", {}).get("severity", "")).lower()
        message = str(result.get("desc", ""))
        if symbolic.get("annotation"):
            message = f"{message}: {symbolic['annotation']}"
        findings.append(
            Finding(
                file=_display(str(path), names, ctx.root),
                line=int(start.get("row", -1)) + 1,
                column=int(start.get("column", -1)) + 1,
                tool="zizmor",
                level=_ZIZMOR_LEVELS.get(severity, Level.WARNING),
                code=str(result.get("ident", "")),
                message=message,
            )
        )
    return findings


def _zizmor_primary(locations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    for location in locations:
        if location.get("symbolic", {}).get("kind") == "Primary":
            return location
    return locations[0] if locations else {}

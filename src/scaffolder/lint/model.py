"""What the quality gate reports: findings, their levels, and the outcome of one run."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: The ``file`` of a finding about a tool rather than a file (not installed, timed out).
NO_FILE = "."

#: What `pip` installs to get every tool the gate runs.
INSTALL_HINT = "pip install 'scaffolder[lint]'"


class Level(enum.StrEnum):
    """How bad a finding is, on one scale for every tool.

    ``error`` always fails the gate, ``warning`` fails it unless warnings are allowed, and
    ``info`` (hadolint's info and style, cfn-lint's I rules, zizmor's informational) never does.
    """

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, kw_only=True, order=True)
class Finding:
    """One problem one tool found.

    Attributes:
        file: path relative to the linted directory (POSIX separators), or `NO_FILE`.
        line: 1-based line, 0 when the finding is about the whole file or the tool.
        column: 1-based column, 0 when unknown.
        tool: the check that found it (``cfn-lint``, ``hadolint``, ...).
        level: see `Level`.
        code: the tool's rule id (``E3002``, ``DL3006``, ``line-length``, ...).
        message: what is wrong, as the tool says it.
    """

    file: str
    line: int
    column: int
    tool: str
    level: Level
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        """The finding as the ``quality:lint`` output and ``--format json`` write it."""
        return {
            "tool": self.tool,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "level": self.level.value,
            "code": self.code,
            "message": self.message,
        }

    def to_text(self) -> str:
        """``path:line:col: level tool/code message``, the way compilers print diagnostics."""
        message = " ".join(self.message.split())  # one line per finding, always
        return (
            f"{self.file}:{self.line}:{self.column}: "
            f"{self.level.value} {self.tool}/{self.code} {message}"
        )


@dataclass(frozen=True, kw_only=True)
class CheckRun:
    """How one check went: what it looked at, what it found, how long it took."""

    check: str
    files: int
    seconds: float
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Report:
    """The outcome of one gate run.

    Attributes:
        findings: every finding, sorted by file, line and column.
        runs: one entry per check that ran, in the order the checks are listed.
        files: how many distinct files were handed to at least one check.
    """

    findings: tuple[Finding, ...]
    runs: tuple[CheckRun, ...] = field(default=())
    files: int = 0

    def failing(self, *, warnings_ok: bool = False) -> list[Finding]:
        """The findings that fail the gate: errors, and warnings unless ``warnings_ok``."""
        levels = {Level.ERROR} if warnings_ok else {Level.ERROR, Level.WARNING}
        return [f for f in self.findings if f.level in levels]

    def counts(self) -> dict[Level, int]:
        """How many findings there are at each level."""
        counts = dict.fromkeys(Level, 0)
        for finding in self.findings:
            counts[finding.level] += 1
        return counts

    def summary(self) -> str:
        """One line: the counts per level and how many files were checked."""
        if not self.findings:
            return f"clean: {self.files} files checked, no findings"
        counts = self.counts()
        parts = [
            _plural(counts[Level.ERROR], "error"),
            _plural(counts[Level.WARNING], "warning"),
            _plural(counts[Level.INFO], "info"),
        ]
        return f"{len(self.findings)} findings ({', '.join(parts)}) in {self.files} files checked"

    def to_json(self) -> dict[str, Any]:
        """The report as ``--format json`` prints it."""
        return {
            "findings": [f.to_json() for f in self.findings],
            "count": len(self.findings),
            "summary": {level.value: n for level, n in self.counts().items()},
            "files": self.files,
            "checks": {
                run.check: {"files": run.files, "seconds": round(run.seconds, 3)}
                for run in self.runs
            },
        }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word == "info" else f"{n} {word}s"


def tool_finding(tool: str, code: str, message: str, level: Level = Level.ERROR) -> Finding:
    """A finding about a tool itself (missing, timed out, crashed), not about a file."""
    return Finding(
        file=NO_FILE, line=0, column=0, tool=tool, level=level, code=code, message=message
    )


def sort_findings(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """Findings in reading order: by file, line, column, then tool."""
    return tuple(sorted(findings, key=lambda f: (f.file, f.line, f.column, f.tool, f.code)))

"""Fixtures for the builtin action tests: a real ActionContext over a temporary workspace."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal, TemplateAction

_LEVEL_PREFIX = re.compile(r"^\x1b\[\d+m(\w+)\x1b\[39m: ", re.DOTALL)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@dataclass
class ActionRun:
    """One action invocation: its context and what it logged and output."""

    ctx: ActionContext
    lines: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[str]:
        """Log lines without the coloured level prefix."""
        return [_LEVEL_PREFIX.sub("", line) for line in self.lines]

    def levels(self) -> list[str]:
        """The level of each line."""
        return [m.group(1) if (m := _LEVEL_PREFIX.match(line)) else "" for line in self.lines]


RunAction = Callable[..., ActionRun]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the workspace, holding a file that must never be touched."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("top secret\n")
    return path


@pytest.fixture
def make_context(workspace: Path) -> Callable[..., ActionRun]:
    def make(
        input: Mapping[str, Any] | None = None,
        *,
        template_info: Mapping[str, Any] | None = None,
        is_dry_run: bool = False,
        signal: CancelSignal | None = None,
    ) -> ActionRun:
        run = ActionRun(ctx=None)  # type: ignore[arg-type]
        run.ctx = ActionContext(
            input=dict(input or {}),
            workspace_path=workspace,
            logger=ActionLogger(run.lines.append),
            signal=signal or CancelSignal(),
            task_id="task-1",
            step_id="step-1",
            step_name="Step 1",
            is_dry_run=is_dry_run,
            template_info=template_info,
            _output=run.outputs.__setitem__,
            _checkpoint=lambda key, fn: fn(),
        )
        return run

    return make


@pytest.fixture
def run_action(make_context: Callable[..., ActionRun]) -> RunAction:
    """Validate ``input`` against the action's schema (as the runner does), then run it."""

    def run(action: TemplateAction, input: Mapping[str, Any], **kwargs: Any) -> ActionRun:
        if action.input_schema is not None:
            jsonschema.Draft7Validator(action.input_schema).validate(dict(input))
        result = make_context(input, **kwargs)
        action.handler(result.ctx)
        return result

    return run


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Create ``files`` (relative path -> contents) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` as relative path -> text (symlinks as ``-> target``)."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = f"-> {path.readlink()}"
        elif path.is_file():
            found[rel] = path.read_text(errors="replace")
    return found

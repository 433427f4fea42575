from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal
from scaffolder.actions.builtin.quality_lint import create_quality_lint_action
from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from tests.lint.conftest import BAD, GOOD, fake_tool


@dataclass
class StepRun:
    """What one ``quality:lint`` step did: its outputs, its log lines, the error it raised."""

    outputs: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    error: ScaffolderError | None = None


Run = Callable[..., StepRun]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    shutil.copytree(BAD, path / "bad")
    shutil.copytree(GOOD, path / "good")
    return path


@pytest.fixture
def run(workspace: Path) -> Run:
    """Validate ``input`` against the schema as the runner does, then run ``quality:lint``."""

    def run(
        input: Mapping[str, Any], *, is_dry_run: bool = False, signal: CancelSignal | None = None
    ) -> StepRun:
        action = create_quality_lint_action()
        assert action.input_schema is not None
        jsonschema.Draft7Validator(action.input_schema).validate(dict(input))
        step = StepRun()
        ctx = ActionContext(
            input=dict(input),
            workspace_path=workspace,
            logger=ActionLogger(step.lines.append),
            signal=signal or CancelSignal(),
            task_id="task-1",
            step_id="lint",
            step_name="Quality gate",
            is_dry_run=is_dry_run,
            _output=step.outputs.__setitem__,
            _checkpoint=lambda key, fn: fn(),
        )
        try:
            action.handler(ctx)
        except ScaffolderError as exc:
            step.error = exc
        return step

    return run


def test_findings_fail_the_step_and_are_output(run: Run) -> None:
    step = run({"path": "bad", "checks": ["hadolint", "catalog"]})

    assert isinstance(step.error, InputError)
    assert step.error.message.startswith("Quality gate failed with 5 findings:\n")
    assert "\nDockerfile:3:1: error hadolint/DL3020 Use COPY instead of ADD" in step.error.message
    assert "\ncatalog-info.yaml:13:3: error catalog/invalid-entity " in step.error.message
    assert step.outputs["count"] == 5
    assert step.outputs["findings"][0] == {
        "tool": "hadolint",
        "file": "Dockerfile",
        "line": 1,
        "column": 1,
        "level": "warning",
        "code": "DL3006",
        "message": "Always tag the version of an image explicitly",
    }
    output_schema = create_quality_lint_action().output_schema
    assert output_schema is not None
    jsonschema.Draft7Validator(output_schema).validate(step.outputs)


def test_without_fail_on_findings_the_step_passes_and_logs_them(run: Run) -> None:
    step = run({"path": "./bad", "checks": ["hadolint"], "failOnFindings": False})

    assert step.error is None
    assert step.outputs["count"] == 3
    assert step.lines[0] == (
        "\x1b[33mwarn\x1b[39m: Dockerfile:1:1: warning hadolint/DL3006 "
        "Always tag the version of an image explicitly"
    )
    assert step.lines[1].startswith("\x1b[31merror\x1b[39m: Dockerfile:3:1: error hadolint/DL3020 ")
    assert step.lines[-1] == (
        "\x1b[32minfo\x1b[39m: 3 findings (1 error, 2 warnings, 0 info) in 1 files checked"
    )


def test_warnings_ok_fails_on_errors_only(run: Run) -> None:
    step = run({"path": "bad", "checks": ["hadolint"], "warningsOk": True})

    assert isinstance(step.error, InputError)
    assert step.error.message == (
        "Quality gate failed with 1 findings:\n"
        "Dockerfile:3:1: error hadolint/DL3020 Use COPY instead of ADD for files and folders"
    )


def test_clean_directory_passes(run: Run) -> None:
    step = run({"path": "good"})

    assert step.error is None
    assert step.outputs == {"findings": [], "count": 0}
    assert step.lines == ["\x1b[32minfo\x1b[39m: clean: 5 files checked, no findings"]


def test_runs_in_dry_run(run: Run) -> None:
    assert create_quality_lint_action().supports_dry_run

    step = run({"path": "good", "checks": ["catalog"]}, is_dry_run=True)

    assert (step.error, step.outputs["count"]) == (None, 0)


def test_default_path_is_the_whole_workspace(run: Run) -> None:
    step = run({"checks": ["catalog"], "failOnFindings": False})

    assert {f["file"] for f in step.outputs["findings"]} == {"bad/catalog-info.yaml"}


def test_path_must_stay_in_the_workspace_and_be_a_directory(run: Run) -> None:
    escaping = run({"path": "../"})
    a_file = run({"path": "good/Dockerfile"})

    assert isinstance(escaping.error, InputError)
    assert "Invalid input 'path'" in escaping.error.message
    assert isinstance(a_file.error, InputError)
    assert "not a directory" in a_file.error.message
    assert escaping.outputs == a_file.outputs == {}


def test_schema_rejects_unknown_checks_and_keys() -> None:
    schema = create_quality_lint_action().input_schema
    assert schema is not None

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate({"checks": ["tflint"]})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate({"failOnFinding": False})


def test_listed_in_the_actions_json() -> None:
    body = create_quality_lint_action().to_json()

    assert body["id"] == "quality:lint"
    assert set(body["schema"]["input"]["properties"]) >= {"path", "checks", "failOnFindings"}
    assert set(body["schema"]["output"]["properties"]) == {"findings", "count"}


def test_cancel_terminates_the_running_linter(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(tmp_path / "bin", "hadolint", "exec sleep 30")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    signal = CancelSignal()
    timer = threading.Timer(0.5, signal.cancel)
    timer.start()

    started = time.monotonic()
    step = run({"path": "bad", "checks": ["hadolint"]}, signal=signal)

    assert time.monotonic() - started < 10
    assert isinstance(step.error, TaskCancelledError)
    timer.join()

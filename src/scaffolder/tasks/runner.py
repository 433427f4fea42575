"""The workflow runner: runs a task's steps and writes Backstage's exact run messages.

One runner serves real tasks (driven by a worker) and dry runs: what differs between them
is the `RunContext` it is given.

With task recovery on (or a ``startOver`` template), the completed steps are saved in the
task's state with their outputs when the run ends, and a re-run of the task (recovered,
handed back, or retried) skips the saved steps and restores their outputs (CONTRACT §11.6).
Their files too: a run that ends without completing keeps its workspace in the task row
(`workspace_archive`), and the re-run unpacks it first; without it (a killed worker never
kept one) every step runs again.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

from scaffolder.actions.base import ActionContext, ActionLogger, CancelSignal, TemplateAction
from scaffolder.actions.registry import ActionRegistry
from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.settings import DEFAULT_WORKSPACE_MAX_BYTES
from scaffolder.tasks.model import ClaimedTask, is_recoverable, utcnow
from scaffolder.tasks.templating import UNDEFINED, Templater, is_truthy, to_js_string
from scaffolder.tasks.workspace_archive import (
    UnsafeArchiveError,
    WorkspaceTooLargeError,
    archived_steps,
    pack_workspace,
    unpack_workspace,
)
from scaffolder.validation import error_stacks, validate

log = logging.getLogger(__name__)

_STATUS_FUNCTIONS = re.compile(r"\b(always|failure)\s*\(\s*\)")
_SECRET_MASK = "***"  # noqa: S105 - the mask, not a secret


class RunContext(Protocol):
    """What the runner needs from whoever drives the run (a worker, or a dry run)."""

    task_id: str
    spec: Mapping[str, Any]
    secrets: Mapping[str, str]
    workspace_path: Path
    signal: CancelSignal
    is_dry_run: bool
    state: dict[str, Any]

    def emit_log(self, body: dict[str, Any]) -> None:
        """Write one log event body (``message`` plus optional ``stepId``/``status``)."""

    def save_state(self) -> None:
        """Persist ``state`` now (a checkpoint was taken) so a re-run can read it."""

    def load_workspace(self) -> bytes | None:
        """The workspace archive an earlier run of the task kept, if any."""

    def save_workspace(self, archive: bytes | None) -> None:
        """Persist ``state`` and keep ``archive`` for a re-run (``None``: drop the kept one)."""


class RunObserver(Protocol):
    """Told when real (not dry) runs start and steps end: the metrics."""

    def task_claimed(self, waited_seconds: float | None) -> None:
        """A worker claimed a task: ``waited_seconds`` since its creation on its first run,
        ``None`` for a retry or recovery."""

    def step_finished(self, action_id: str, status: str, seconds: float) -> None:
        """A step ran for ``seconds`` and ended ``completed``, ``failed`` or ``cancelled``."""


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """How a run ended: ``output`` on success, ``error`` otherwise."""

    status: str
    output: dict[str, Any] | None = None
    error: ScaffolderError | Exception | None = None

    def completion_body(self, redact: Callable[[str], str]) -> dict[str, Any]:
        """The body of the ``completion`` event."""
        body: dict[str, Any] = {"message": f"Run completed with status: {self.status}"}
        if self.error is not None:
            body["error"] = {
                "name": _error_name(self.error),
                "message": redact(_error_message(self.error)),
            }
        else:
            body["output"] = self.output or {}
        return body


@dataclass(kw_only=True)
class _StepOutcome:
    outputs: dict[str, Any] = field(default_factory=dict)


#: Shortest base64 run (a secret inside a longer encoded string) that is masked: shorter
#: runs would mask ordinary text.
_MIN_BASE64_FRAGMENT = 8


class Redactor:
    """Replaces every secret value (longer than one character) with ``***``.

    Also masked: each secret's base64 (standard and URL-safe alphabets, with and without
    padding, and inside a longer encoded string such as ``Basic base64(user:token)``) and its
    URL-encoded forms (``quote`` and ``quote_plus``).
    """

    def __init__(self, secrets: Mapping[str, str]) -> None:
        plain = {str(v) for v in secrets.values() if isinstance(v, str) and len(v) > 1}
        values = set(plain)
        for value in plain:
            values.update(_encoded_forms(value))
        self._pattern = (
            re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))
            if values
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(_SECRET_MASK, text)


class WorkflowRunner:
    """Runs the steps of a task spec (Backstage's NunjucksWorkflowRunner).

    Args:
        recovery_enabled: ``scaffolder.taskRecovery.enabled``: save the completed steps in
            the task's state when the run ends and skip them on a re-run (``startOver`` templates
            do so either way).
        workspace_max_bytes: ``scaffolder.taskRecovery.workspaceMaxBytes``: the largest
            workspace archive (gzipped) kept for such a re-run; ``0`` keeps none.
    """

    def __init__(
        self,
        *,
        registry: ActionRegistry,
        templater: Templater,
        environment_parameters: Mapping[str, Any] | None = None,
        environment_secrets: Mapping[str, str] | None = None,
        observer: RunObserver | None = None,
        recovery_enabled: bool = False,
        workspace_max_bytes: int = DEFAULT_WORKSPACE_MAX_BYTES,
    ) -> None:
        self._registry = registry
        self._recovery_enabled = recovery_enabled
        self._workspace_max_bytes = workspace_max_bytes
        self._templater = templater
        self._env_parameters = dict(environment_parameters or {})
        self._env_secrets = dict(environment_secrets or {})
        self._observer = observer

    def claimed(self, task: ClaimedTask) -> None:
        """Tell the observer a worker claimed ``task`` (the claim latency of first runs)."""
        if self._observer is None:
            return
        waited = None
        # A startOver task's earlier run is hidden from its events: not a first run either.
        if task.first_run and task.created_at is not None and not is_recoverable(task.spec):
            waited = max((utcnow() - task.created_at).total_seconds(), 0.0)
        self._observer.task_claimed(waited)

    def execute(self, run: RunContext) -> RunResult:
        """Run every step; never raises for a step failure (it is in the result)."""
        spec = run.spec
        steps: list[dict[str, Any]] = list(spec.get("steps") or [])
        env_secrets = {} if run.is_dry_run else self._env_secrets
        redact = Redactor({**run.secrets, **env_secrets})
        run.emit_log({"message": f"Starting up task with {len(steps)} steps"})
        resumable = not run.is_dry_run and (self._recovery_enabled or is_recoverable(dict(spec)))
        completed = _completed_steps(run.state) if resumable else {}
        if completed:
            completed = self._restore_workspace(run, steps, completed, redact)
        if completed:
            run.emit_log(
                {
                    "message": "Task recovered - resuming from last known good state. "
                    f"{len(completed)} step(s) already completed."
                }
            )

        step_outputs: dict[str, dict[str, Any]] = {}
        base_context: dict[str, Any] = {
            "parameters": spec.get("parameters") or {},
            "steps": step_outputs,
            "user": spec.get("user") or {},
            "context": {"task": {"id": run.task_id}},
            "environment": {"parameters": self._env_parameters, "secrets": env_secrets},
        }
        first_error: Exception | None = None

        for step in steps:
            step_id = str(step.get("id"))
            name = str(step.get("name", step.get("action")))
            if step_id in completed:
                # Its "completed" status again, so a log replayed from here (a startOver
                # listing starts at the recovery) does not leave the step looking unfinished.
                step_outputs[step_id] = {"output": completed[step_id]}
                run.emit_log(
                    {
                        "message": f"Skipping step {step_id} because it was already completed "
                        "in a previous run",
                        "stepId": step_id,
                        "status": "completed",
                    }
                )
                continue
            failed = first_error is not None
            status_context = _status_functions(failed)
            condition = step.get("if")
            if failed and not (isinstance(condition, str) and _STATUS_FUNCTIONS.search(condition)):
                run.emit_log(
                    {
                        "message": f"Skipping step {step_id} because a previous step failed",
                        "stepId": step_id,
                        "status": "skipped",
                    }
                )
                continue
            run.emit_log(
                {"message": f"Beginning step {name}", "stepId": step_id, "status": "processing"}
            )
            started: float | None = None
            try:
                if run.signal.cancelled:
                    raise TaskCancelledError(
                        f"Step {step_id} ({name}) of task {run.task_id} has been cancelled."
                    )
                context = {**base_context, **status_context}
                if "each" not in step and not self._condition_holds(condition, context):
                    run.emit_log(
                        {
                            "message": f"Skipping step {step_id} because its if condition "
                            "was false",
                            "stepId": step_id,
                            "status": "skipped",
                        }
                    )
                    continue
                started = time.monotonic()
                outputs = self._run_step(run, step, step_id, name, context, redact)
                step_outputs[step_id] = {"output": outputs}
                if run.signal.cancelled:
                    raise TaskCancelledError(
                        f"Step {step_id} ({name}) of task {run.task_id} has been cancelled."
                    )
                if resumable:
                    # Stored when the run ends (with the completion, or with the workspace
                    # it keeps), not after each step: a re-run can use the steps only with
                    # their files, which exist only once the run has ended.
                    steps_state = run.state.setdefault("steps", {})
                    steps_state[step_id] = {"status": "completed", "output": outputs}
                self._step_finished(run, step, started, "completed")
                run.emit_log(
                    {"message": f"Finished step {name}", "stepId": step_id, "status": "completed"}
                )
            except Exception as exc:
                if started is not None:
                    outcome = "cancelled" if run.signal.cancelled else "failed"
                    self._step_finished(run, step, started, outcome)
                text = redact(f"{_error_name(exc)}: {_error_message(exc)}")
                if first_error is not None:
                    text = f"Additional error occurred: {text}"
                run.emit_log({"message": text, "stepId": step_id, "status": "failed"})
                if first_error is None:
                    first_error = exc

        if first_error is not None:
            status = "cancelled" if run.signal.cancelled else "failed"
            if resumable:
                self._keep_workspace(run)
            return RunResult(status=status, error=first_error)
        output = self._render_output(spec.get("output") or {}, base_context)
        return RunResult(status="completed", output=output)

    # --- the workspace of a re-run ---------------------------------------------------------

    def _restore_workspace(
        self,
        run: RunContext,
        steps: list[dict[str, Any]],
        completed: dict[str, dict[str, Any]],
        redact: Redactor,
    ) -> dict[str, dict[str, Any]]:
        """The saved steps this re-run skips, their files unpacked into its workspace.

        Those the kept archive holds the work of (it may be older than the last saved
        steps: a worker killed after it restored the archive keeps none). Without a usable
        archive, none: the saved steps are forgotten (their files are gone) and every step
        runs again; checkpoints still keep side effects from repeating.
        """
        if all(str(step.get("id")) in completed for step in steps):
            return completed  # no step runs, so none needs their files
        archive = run.load_workspace()
        why = "is not available"
        if archive is not None:
            try:
                archived = set(archived_steps(archive))
                if archived and archived <= set(completed):
                    unpack_workspace(
                        archive, run.workspace_path, max_bytes=self._workspace_max_bytes
                    )
                    return {k: v for k, v in completed.items() if k in archived}
                why = "does not match the saved steps"
            except UnsafeArchiveError as exc:
                log.warning("task %s: the kept workspace archive was refused: %s", run.task_id, exc)
                why = f"was refused: {exc.message}"
                # Whatever part of it was unpacked (all inside the workspace) goes.
                shutil.rmtree(run.workspace_path, ignore_errors=True)
                run.workspace_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        run.state.pop("steps", None)
        run.save_workspace(None)
        run.emit_log(
            {
                "message": redact(
                    f"Workspace of the previous run {why}; running all {len(steps)} steps again"
                )
            }
        )
        return {}

    def _keep_workspace(self, run: RunContext) -> None:
        """Keep the workspace of a run that did not complete, for a re-run (CONTRACT §11.6).

        Only with saved steps (the re-run skips them). Over the cap nothing is kept, and the
        archive an earlier run kept goes too: it lacks this run's work.
        """
        saved = _completed_steps(run.state)
        if not saved:
            return
        archive: bytes | None = None
        try:
            if self._workspace_max_bytes > 0:
                archive = pack_workspace(
                    run.workspace_path, steps=saved, max_bytes=self._workspace_max_bytes
                )
        except WorkspaceTooLargeError as exc:
            log.warning(
                "task %s: workspace not kept for a retry, %s "
                "(scaffolder.taskRecovery.workspaceMaxBytes: %d); a retry runs every step again",
                run.task_id,
                exc.message,
                self._workspace_max_bytes,
            )
            run.emit_log(
                {
                    "message": f"The workspace was not kept for a retry: {exc.message} "
                    "(scaffolder.taskRecovery.workspaceMaxBytes); a retry runs every step again"
                }
            )
        except OSError:
            log.exception("task %s: the workspace could not be archived", run.task_id)
        try:
            run.save_workspace(archive)
        except Exception:  # the run's result stands; a retry then runs every step again
            log.exception("task %s: keeping its workspace failed", run.task_id)

    # --- one step ----------------------------------------------------------------------

    def _step_finished(
        self, run: RunContext, step: Mapping[str, Any], started: float, status: str
    ) -> None:
        if self._observer is not None and not run.is_dry_run:
            seconds = time.monotonic() - started
            self._observer.step_finished(str(step.get("action")), status, seconds)

    def _condition_holds(self, condition: Any, context: Mapping[str, Any]) -> bool:
        if condition is None:
            return True
        if isinstance(condition, bool):
            return condition
        return is_truthy(self._templater.render_value(condition, context))

    def _run_step(
        self,
        run: RunContext,
        step: Mapping[str, Any],
        step_id: str,
        name: str,
        context: dict[str, Any],
        redact: Redactor,
    ) -> dict[str, Any]:
        action = self._registry.get(str(step.get("action")))
        secret_context = {**context, "secrets": dict(run.secrets)}
        iterations = self._iterations(step, action, secret_context)
        logger = ActionLogger(
            lambda line: run.emit_log({"message": redact(line), "stepId": step_id})
        )
        collected: dict[str, Any] = {}
        temp_dirs: list[Path] = []
        try:
            for each in iterations:
                item_context = secret_context if each is None else {**secret_context, "each": each}
                if each is not None:
                    shown = json.dumps(
                        {"key": each["key"], "value": to_js_string(each["value"])},
                        separators=(",", ":"),
                    )
                    if not self._condition_holds(step.get("if"), item_context):
                        logger.info(f"Skipping step each: {shown}")
                        continue
                    logger.info(f"Running step each: {shown}")
                raw_input = step.get("input") or {}
                rendered = self._templater.render_value(copy.deepcopy(raw_input), item_context)
                action_input: dict[str, Any] = rendered if isinstance(rendered, dict) else {}
                label = action.id if each is None else f"{action.id}[{each['key']}]"
                if action.input_schema is not None:
                    errors = validate(action_input, action.input_schema)
                    if errors:
                        raise InputError(
                            f"Invalid input passed to action {label}, {error_stacks(errors)}"
                        )
                outputs: dict[str, Any] = {}
                if run.is_dry_run:
                    public = self._templater.render_value(
                        copy.deepcopy(raw_input), {**context, "each": each} if each else context
                    )
                    shown_input = _mask_secret_inputs(action_input, public)
                    logger.info(
                        f"Running {action.id} in dry-run mode with inputs (secrets redacted): "
                        f"{json.dumps(shown_input, indent=2)}"
                    )
                    if not action.supports_dry_run:
                        run.emit_log(
                            {
                                "message": f"Skipping because {action.id} does not support dry-run",
                                "stepId": step_id,
                                "status": "skipped",
                            }
                        )
                        example = _example_output(action.output_schema)
                        if isinstance(example, dict):
                            outputs.update(example)
                        _collect(collected, outputs, each is not None)
                        continue
                ctx = ActionContext(
                    input=action_input,
                    workspace_path=run.workspace_path,
                    logger=logger,
                    signal=run.signal,
                    task_id=run.task_id,
                    step_id=step_id,
                    step_name=name,
                    is_dry_run=run.is_dry_run,
                    template_info=(run.spec.get("templateInfo") or None),
                    user=run.spec.get("user") or {},
                    secrets=dict(run.secrets),
                    each=each,
                    _output=outputs.__setitem__,
                    _checkpoint=lambda key, fn: self._checkpoint(run, step_id, key, fn),
                    _temp_dirs=temp_dirs,
                )
                action.handler(ctx)
                _collect(collected, outputs, each is not None)
        finally:
            for path in temp_dirs:
                shutil.rmtree(path, ignore_errors=True)
        return collected

    def _iterations(
        self, step: Mapping[str, Any], action: TemplateAction, context: Mapping[str, Any]
    ) -> list[dict[str, Any] | None]:
        if "each" not in step:
            return [None]
        raw = step["each"]
        value = self._templater.render_value(raw, context) if isinstance(raw, str) else raw
        if value is UNDEFINED or value is None or (isinstance(value, str) and value == raw):
            raise InputError(
                f'Invalid value on action {action.id}.each parameter, "{raw}" cannot be '
                "resolved to a value"
            )
        if isinstance(value, list):
            return [{"key": str(i), "value": v} for i, v in enumerate(value)]
        if isinstance(value, dict):
            return [{"key": str(k), "value": v} for k, v in value.items()]
        raise InputError(
            f'Invalid value on action {action.id}.each parameter, "{raw}" must resolve to an '
            "array or object"
        )

    def _checkpoint(self, run: RunContext, step_id: str, key: str, fn: Callable[[], Any]) -> Any:
        checkpoints = run.state.setdefault("checkpoints", {})
        stored_key = f"v1.task.checkpoint.{step_id}.{key}"
        stored = checkpoints.get(stored_key)
        if isinstance(stored, dict) and stored.get("status") == "success":
            return stored.get("value")
        try:
            value = fn()
        except Exception as exc:
            checkpoints[stored_key] = {"status": "failed", "reason": str(exc)}
            run.save_state()
            raise
        checkpoints[stored_key] = {"status": "success", "value": {} if value is None else value}
        run.save_state()
        return value

    def _render_output(
        self, output: Mapping[str, Any], context: Mapping[str, Any]
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {}
        for key, value in output.items():
            if key in ("links", "text") and isinstance(value, list):
                items = []
                for item in value:
                    if not isinstance(item, dict):
                        continue
                    if "if" in item and not self._condition_holds(item["if"], context):
                        continue
                    body = {k: v for k, v in item.items() if k != "if"}
                    result = self._templater.render_value(body, context)
                    if isinstance(result, dict):
                        items.append(result)
                rendered[key] = items
                continue
            result = self._templater.render_value(copy.deepcopy(value), context)
            if result is not UNDEFINED:
                rendered[key] = result
        return rendered


def _encoded_forms(value: str) -> set[str]:
    """How a secret may appear once encoded: base64 and URL-encoding."""
    raw = value.encode()
    forms = {quote(value, safe=""), quote(value), quote_plus(value)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms.update({whole, whole.rstrip("=")})
        # The secret at any byte offset of a longer encoded string: encode it behind 1 or 2
        # filler bytes and keep only the characters that depend on its bytes alone.
        for offset in (1, 2):
            encoded = encode(b"\0" * offset + raw).decode().rstrip("=")
            tail = (offset + len(raw)) % 3
            end = len(encoded) - (tail and tail + 1)
            fragment = encoded[4:end]
            if len(fragment) >= _MIN_BASE64_FRAGMENT:
                forms.add(fragment)
        tail = len(raw) % 3
        head = whole.rstrip("=")[: len(whole.rstrip("=")) - (tail and tail + 1)]
        if len(head) >= _MIN_BASE64_FRAGMENT:
            forms.add(head)
    return {form for form in forms if len(form) > 1}


def _completed_steps(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The outputs of the steps an earlier run of the task saved as completed, by step id."""
    saved = state.get("steps")
    if not isinstance(saved, dict):
        return {}
    return {
        str(step_id): dict(value.get("output") or {})
        for step_id, value in saved.items()
        if isinstance(value, dict) and value.get("status") == "completed"
    }


def _status_functions(failed: bool) -> dict[str, Callable[[], bool]]:
    """The ``always()``, ``failure()`` and ``success()`` globals of a step's ``if``."""
    return {"always": lambda: True, "failure": lambda: failed, "success": lambda: not failed}


def _collect(collected: dict[str, Any], outputs: Mapping[str, Any], iterating: bool) -> None:
    for key, value in outputs.items():
        if iterating:
            collected.setdefault(key, []).append(value)
        else:
            collected[key] = value


def _mask_secret_inputs(with_secrets: Any, without: Any) -> Any:
    """Show ``***`` where rendering with secrets differs from rendering without them."""
    if isinstance(with_secrets, dict) and isinstance(without, dict):
        return {k: _mask_secret_inputs(v, without.get(k)) for k, v in with_secrets.items()}
    if (
        isinstance(with_secrets, list)
        and isinstance(without, list)
        and len(with_secrets) == len(without)
    ):
        return [_mask_secret_inputs(a, b) for a, b in zip(with_secrets, without, strict=True)]
    return with_secrets if with_secrets == without else _SECRET_MASK


def _example_output(schema: Mapping[str, Any] | None) -> Any:
    """Backstage's generateExampleOutput for actions skipped in a dry run."""
    if not schema:
        return {}
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _example_output(v) for k, v in props.items()}
    if kind == "array":
        items = schema.get("items")
        return [_example_output(items)] if isinstance(items, dict) else []
    if kind == "string":
        return "<example>"
    if kind in ("number", "integer"):
        return 0
    if kind == "boolean":
        return False
    return "<unknown>"


def _error_name(error: BaseException) -> str:
    if isinstance(error, ScaffolderError):
        return error.name
    return "Error"


def _error_message(error: BaseException) -> str:
    if isinstance(error, ScaffolderError):
        return error.message
    return str(error) or type(error).__name__

"""The action SDK: what an action is, and what its handler receives.

An action is a `TemplateAction`: an id of the form ``area:verb``, a description, JSON schemas
for its input and output, and a handler that takes an `ActionContext`. Builtin actions and
third-party plugins (entry-point group ``scaffolder.actions``) are built the same way::

    def create_hello_action() -> TemplateAction:
        def handler(ctx: ActionContext) -> None:
            ctx.logger.info(f"hello {ctx.input['name']}")
            ctx.output("greeting", f"hello {ctx.input['name']}")

        return TemplateAction(
            id="acme:hello",
            description="Says hello.",
            input_schema={"type": "object", "required": ["name"],
                          "properties": {"name": {"type": "string"}}},
            handler=handler,
        )
"""

from __future__ import annotations

import json
import signal as _signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from scaffolder.errors import TaskCancelledError
from scaffolder.tasks.workspace import resolve_within

T = TypeVar("T")

#: winston's `colorize()` codes for each level, as Backstage writes them into task logs.
LEVEL_COLOURS: Mapping[str, str] = {
    "error": "\x1b[31m",
    "warn": "\x1b[33m",
    "info": "\x1b[32m",
    "debug": "\x1b[34m",
}
_RESET = "\x1b[39m"


@dataclass(frozen=True, kw_only=True)
class ActionExample:
    """One usage example shown in ``GET /v2/actions``."""

    description: str
    example: str


@dataclass(frozen=True, kw_only=True)
class TemplateAction:
    """A scaffolder action.

    Attributes:
        id: ``area:verb``, unique in the registry.
        description: shown in ``GET /v2/actions``; omitted from the JSON when None.
        handler: called with an `ActionContext`; returns nothing, reports through the context.
        input_schema: JSON schema the rendered input is validated against before the handler.
        output_schema: JSON schema of what the handler passes to ``ctx.output``.
        examples: usage examples.
        supports_dry_run: whether the handler runs in dry-run mode (it must not touch the world
            outside the workspace when ``ctx.is_dry_run``).
    """

    id: str
    handler: Callable[[ActionContext], None]
    description: str | None = None
    input_schema: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None
    examples: tuple[ActionExample, ...] = ()
    supports_dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """The action as ``GET /v2/actions`` lists it (undefined keys left out)."""
        body: dict[str, Any] = {"id": self.id}
        if self.description is not None:
            body["description"] = self.description
        body["examples"] = [
            {"description": e.description, "example": e.example} for e in self.examples
        ]
        schema: dict[str, Any] = {}
        if self.input_schema is not None:
            schema["input"] = self.input_schema
        if self.output_schema is not None:
            schema["output"] = self.output_schema
        body["schema"] = schema
        return body


class Terminable(Protocol):
    """Anything a cancel can stop: a `subprocess.Popen`, a pool child, ..."""

    def terminate(self) -> None: ...


class CancelSignal:
    """The cancel signal every action sees (Backstage's ``ctx.signal``).

    A handler that waits should wait on `wait` rather than `time.sleep`; a handler that starts
    a child process should `attach` it so that a cancel terminates it at once.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._children: list[Terminable] = []
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        """Whether the task has been cancelled."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until cancelled or ``timeout`` seconds pass; True if cancelled."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        """Raise `TaskCancelledError` if the task has been cancelled."""
        if self._event.is_set():
            raise TaskCancelledError("The task has been cancelled")

    def attach(self, child: Terminable) -> None:
        """Terminate ``child`` when the task is cancelled (at once if it already is)."""
        with self._lock:
            self._children.append(child)
            fire = self._event.is_set()
        if fire:
            _terminate(child)

    def detach(self, child: Terminable) -> None:
        """Stop tracking ``child`` (it has finished)."""
        with self._lock:
            if child in self._children:
                self._children.remove(child)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the task is cancelled (at once if it already is)."""
        with self._lock:
            self._callbacks.append(callback)
            fire = self._event.is_set()
        if fire:
            callback()

    def cancel(self) -> None:
        """Raise the signal: wake waiters, terminate children, run callbacks."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            children = list(self._children)
            callbacks = list(self._callbacks)
        for child in children:
            _terminate(child)
        for callback in callbacks:
            callback()


def _terminate(child: Terminable) -> None:
    try:
        if isinstance(child, subprocess.Popen):
            child.send_signal(_signal.SIGTERM)
        else:
            child.terminate()
    except (ProcessLookupError, OSError):
        pass


class ActionLogger:
    """The logger a handler writes to; each call becomes one task log event.

    Lines are formatted as Backstage's winston ``colorize() + simple()`` format does
    (``\\x1b[32minfo\\x1b[39m: message {meta}``); the sink redacts secrets.
    """

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink

    def log(self, level: str, message: object, meta: Mapping[str, Any] | None = None) -> None:
        """Write one line at ``level`` (error, warn, info, debug)."""
        text = message if isinstance(message, str) else json.dumps(message)
        line = f"{LEVEL_COLOURS.get(level, '')}{level}{_RESET}: {text}"
        if meta:
            line += " " + json.dumps(meta, separators=(",", ":"), default=str)
        self._sink(line)

    def info(self, message: object, meta: Mapping[str, Any] | None = None) -> None:
        """Write an info line."""
        self.log("info", message, meta)

    def warn(self, message: object, meta: Mapping[str, Any] | None = None) -> None:
        """Write a warning line."""
        self.log("warn", message, meta)

    warning = warn

    def error(self, message: object, meta: Mapping[str, Any] | None = None) -> None:
        """Write an error line."""
        self.log("error", message, meta)

    def debug(self, message: object, meta: Mapping[str, Any] | None = None) -> None:
        """Write a debug line."""
        self.log("debug", message, meta)


@dataclass(kw_only=True)
class ActionContext:
    """What a handler receives (Backstage's ``ActionContext``).

    Attributes:
        input: the rendered, schema-validated input.
        workspace_path: the task workspace; every path an action takes must stay inside it
            (use `resolve_path`).
        logger: lines written here become task log events.
        signal: the cancel signal.
        is_dry_run: True in ``POST /v2/dry-run`` and ``scaffolder dry-run``.
        task_id: the task id (the workspace name).
        step_id: the id of the running step.
        step_name: the name of the running step.
        template_info: ``spec.templateInfo`` of the task (entityRef, baseUrl, entity), if any.
        user: ``{"entity": ..., "ref": ...}`` of the task's creator, or ``{}``.
        secrets: the task secrets (never logged).
        each: the current ``each`` item, if the step iterates.
    """

    input: dict[str, Any]
    workspace_path: Path
    logger: ActionLogger
    signal: CancelSignal
    task_id: str
    step_id: str
    step_name: str
    is_dry_run: bool = False
    template_info: Mapping[str, Any] | None = None
    user: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    each: Mapping[str, Any] | None = None
    _output: Callable[[str, Any], None] = field(repr=False)
    _checkpoint: Callable[[str, Callable[[], Any]], Any] = field(repr=False)
    _temp_dirs: list[Path] = field(default_factory=list, repr=False)

    def output(self, name: str, value: Any) -> None:
        """Set the step output ``name`` (``steps.<id>.output.<name>`` in later steps)."""
        self._output(name, value)

    def checkpoint(self, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` once per task: on a retry the stored result is returned instead.

        Use it around side effects that must not happen twice (creating a repository).
        """
        result: T = self._checkpoint(key, fn)
        return result

    def resolve_path(self, user_path: str, *, input_name: str) -> Path:
        """Resolve a path from the input inside the workspace (see `resolve_within`)."""
        return resolve_within(self.workspace_path, user_path, input_name=input_name)

    def create_temporary_directory(self) -> Path:
        """A fresh directory beside the workspace, removed after the step."""
        path = Path(
            tempfile.mkdtemp(
                prefix=f"{self.workspace_path.name}_step-{self.step_id}-",
                dir=self.workspace_path.parent,
            )
        )
        self._temp_dirs.append(path)
        return path

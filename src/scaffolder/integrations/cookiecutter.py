"""Render cookiecutter templates in isolated child processes, fast.

cookiecutter is never imported into the scaffolder process: it mutates ``sys.path``, reads and
writes under ``~``, runs hooks, and imports extensions a template names. Each render runs in a
child process of its own that exits afterwards, so nothing leaks from one task to the next.

`CookiecutterPool` keeps one pre-started **fork server** (`cookiecutter_child`): an interpreter
that has imported cookiecutter and Jinja, rendered a small template once, and then waits. It
never renders a job itself. Children are forks of it, so none pays an interpreter start and
cookiecutter's imports (~250 ms): ``spares`` of them (default 1) are forked ahead of time,
warm up (they take their copy-on-write faults on a throw-away render) and wait for one job
each; a render that finds no spare forks a child on demand (a few milliseconds more), so a
burst of tasks never waits for an interpreter. The server starts on first use (or `start`)
and is restarted if it dies.

The protocol (JSON over pipes; `cookiecutter_protocol` is our side, `cookiecutter_child` the
children's) carries a `RenderJob` in and log lines, hook output and a result or error out. A
cancel kills the child's process group.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations import Cancellation
from scaffolder.integrations.cookiecutter_protocol import (
    FORK,
    SPARE,
    ForkServer,
    RenderChild,
    ServerGone,
)

log = logging.getLogger(__name__)

#: Seconds to wait for the fork server to import cookiecutter.
START_TIMEOUT_SECONDS = 60.0
#: Seconds a render (hooks included) may take before its child is killed.
RENDER_TIMEOUT_SECONDS = 600.0
#: Children kept forked and warmed up, each waiting for a job.
DEFAULTSPARES = 1
CONTEXT_FILE = "cookiecutter.json"


@dataclass(frozen=True, kw_only=True)
class RenderJob:
    """What one render needs.

    Attributes:
        template_dir: the fetched directory: a cookiecutter template (``cookiecutter.json``
            beside a ``{{cookiecutter.*}}`` directory), or, without a cookiecutter.json, a bare
            skeleton rendered with ``values`` as its whole context (upstream Backstage's layout).
        output_dir: an empty directory the project directory is generated in.
        work_dir: the step's directory; HOME, TMPDIR and the replay directory go here.
        values: the user's values, passed as data.
        trusted: whether hooks and extensions beyond cookiecutter's own may run.
        source: the template source, as errors name it.
        trust_hint: how to trust the source, appended to errors about trust.
        template: ``cookiecutter._template`` (the url as given).
        checkout: ``cookiecutter._checkout`` (the git ref, if any).
        copy_without_render: added to ``_copy_without_render``.
        extensions: added to ``_extensions``.
        dry_run: sets ``SCAFFOLDER_DRY_RUN=1`` for hooks.
    """

    template_dir: Path
    output_dir: Path
    work_dir: Path
    values: Mapping[str, Any]
    trusted: bool
    source: str
    trust_hint: str = ""
    template: str = ""
    checkout: str | None = None
    copy_without_render: Sequence[str] = ()
    extensions: Sequence[str] = ()
    dry_run: bool = False

    @property
    def layout(self) -> str:
        """``cookiecutter`` for a template with a cookiecutter.json, else ``skeleton``."""
        return "cookiecutter" if (self.template_dir / CONTEXT_FILE).is_file() else "skeleton"

    def to_json(self) -> dict[str, Any]:
        """The job as the child reads it."""
        return {
            "template_dir": str(self.template_dir),
            "layout": self.layout,
            "output_dir": str(self.output_dir),
            "values": dict(self.values),
            "trusted": self.trusted,
            "source": self.source,
            "trust_hint": self.trust_hint,
            "template": self.template,
            "checkout": self.checkout,
            "copy_without_render": list(self.copy_without_render),
            "extensions": list(self.extensions),
            "dry_run": self.dry_run,
            "home": str(self.work_dir / "home"),
            "tmp": str(self.work_dir / "tmp"),
            "replay_dir": str(self.work_dir / "replay"),
        }


@dataclass(frozen=True, kw_only=True)
class RenderResult:
    """A finished render: the generated project directory and how many files it holds."""

    project_dir: Path
    files: int


class CookiecutterPool:
    """Renders `RenderJob`s, each in a fresh fork of a warm cookiecutter process.

    ``spares`` children are kept forked and warmed up ahead of time, each waiting for one job
    (a render that finds none forks one on demand, which costs a few milliseconds more).
    Thread-safe: any number of threads may call `render` at once. Call `close` when done.
    """

    def __init__(
        self,
        *,
        spares: int = DEFAULTSPARES,
        python: str = sys.executable,
        start_timeout: float = START_TIMEOUT_SECONDS,
        render_timeout: float = RENDER_TIMEOUT_SECONDS,
    ) -> None:
        self._spares_wanted = spares
        self._python = python
        self._start_timeout = start_timeout
        self._render_timeout = render_timeout
        self._lock = threading.Lock()
        self._owner = os.getpid()
        self._server: ForkServer | None = None
        self._spares: list[RenderChild] = []
        self._children: set[RenderChild] = set()
        self._replenishing = False
        self._closed = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CookiecutterPool:
        """A pool as ``scaffolder.cookiecutter`` configures it (``spares``: children kept
        ready, default 1; 0 keeps only the fork server)."""
        scaffolder = config.get("scaffolder")
        section = scaffolder.get("cookiecutter") if isinstance(scaffolder, Mapping) else None
        spares = section.get("spares", DEFAULTSPARES) if isinstance(section, Mapping) else None
        if spares is None:
            spares = DEFAULTSPARES
        if not isinstance(spares, int) or isinstance(spares, bool) or not 0 <= spares <= 16:
            raise InputError("scaffolder.cookiecutter.spares must be an integer from 0 to 16")
        return cls(spares=spares)

    def start(self) -> None:
        """Start the fork server and the spares now rather than on the first render.

        Returns at once; the server imports cookiecutter in the background.
        """
        with self._lock:
            self._server_for_use(wait=False)
            self._replenish_soon()

    def render(
        self,
        job: RenderJob,
        *,
        signal: Cancellation | None = None,
        on_output: Callable[[str], None] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> RenderResult:
        """Render ``job`` in a child of its own.

        Args:
            job: what to render.
            signal: the task's cancel signal; a cancel kills the child and its hooks.
            on_output: called with each line hooks print.
            on_log: called with each progress line of the render.

        Raises:
            InputError: the template or the values are wrong (the message says where).
            ScaffolderError: the render failed otherwise, or timed out.
            TaskCancelledError: the task was cancelled.
        """
        outcome: dict[str, Any] = {}
        said: list[bool] = []

        def on_message(message: dict[str, Any]) -> None:
            said.append(True)
            if "log" in message:
                if on_log is not None:
                    on_log(str(message["log"]))
            else:
                outcome.update(message)

        for attempt in (1, 2):
            child = self._take(spare=attempt == 1)
            if signal is not None:
                signal.attach(child)
            try:
                child.send(json.dumps(job.to_json(), default=str).encode("utf-8"))
                child.collect(
                    timeout=self._render_timeout,
                    on_output=on_output or (lambda _line: None),
                    on_message=on_message,
                )
            finally:
                if signal is not None:
                    signal.detach(child)
                child.close()
                with self._lock:
                    self._children.discard(child)
                    # Warming a new spare up costs a render's CPU: not while this one runs.
                    self._replenish_soon()
            cancelled = signal is not None and signal.cancelled
            # A spare that died while it waited says nothing and writes nothing: use another.
            if (
                said
                or cancelled
                or child.timed_out
                or not child.spare
                or any(job.output_dir.iterdir())
            ):
                break
        if signal is not None and signal.cancelled:
            raise TaskCancelledError("The task has been cancelled")
        if "result" in outcome:
            result = outcome["result"]
            return RenderResult(project_dir=Path(result["project_dir"]), files=result["files"])
        if "error" in outcome:
            error = outcome["error"]
            if error.get("kind") == "input":
                raise InputError(str(error["message"]))
            raise ScaffolderError(f"cookiecutter failed: {error['message']}")
        if child.timed_out:
            raise ScaffolderError(
                f"cookiecutter took longer than {self._render_timeout:g} s and was stopped"
            )
        raise ScaffolderError("cookiecutter's render process ended without a result")

    def close(self) -> None:
        """Stop the fork server, the spares and any render still running."""
        with self._lock:
            self._closed = True
            children = [*self._children, *self._spares]
            self._children, self._spares = set(), []
            server, self._server = self._server, None
        for child in children:
            child.close()
        if server is not None:
            server.stop()

    def _take(self, *, spare: bool = True) -> RenderChild:
        with self._lock:
            self._adopt()
            while spare and self._spares:
                child = self._spares.pop(0)
                if child.waiting():
                    self._children.add(child)
                    return child
                child.close()
        child = self._fork(FORK)
        with self._lock:
            self._children.add(child)
        return child

    def _fork(self, kind: bytes) -> RenderChild:
        for _attempt in (1, 2):
            job_r, job_w = os.pipe()
            result_r, result_w = os.pipe()
            output_r, output_w = os.pipe()
            try:
                with self._lock:
                    server = self._server_for_use(wait=True)
                    try:
                        pid = server.fork(kind, (job_r, result_w, output_w))
                    except ServerGone:
                        server.stop()
                        self._server = None
                        pid = None
                if pid is not None:
                    spare = kind == SPARE
                    return RenderChild(
                        pid=pid, job_w=job_w, result_r=result_r, output_r=output_r, spare=spare
                    )
            except BaseException:
                for fd in (job_w, result_r, output_r):
                    os.close(fd)
                raise
            finally:
                for fd in (job_r, result_w, output_w):
                    os.close(fd)
            # The server died mid-request: a child it may have forked sees EOF and exits.
            for fd in (job_w, result_r, output_r):
                os.close(fd)
        raise ScaffolderError("The cookiecutter pool could not start a render process")

    def _replenish_soon(self) -> None:
        """Fork spares in the background up to the wanted number (call with the lock held)."""
        if self._replenishing or self._closed or len(self._spares) >= self._spares_wanted:
            return
        self._replenishing = True
        threading.Thread(target=self._replenish, name="cookiecutter-spares", daemon=True).start()

    def _replenish(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closed or len(self._spares) >= self._spares_wanted:
                        return
                child = self._fork(SPARE)
                with self._lock:
                    if self._closed:
                        child.close()
                        return
                    self._spares.append(child)
        except Exception:  # the next render forks on demand, and says what went wrong
            log.debug("could not fork a spare cookiecutter child", exc_info=True)
        finally:
            with self._lock:
                self._replenishing = False

    def _adopt(self) -> None:
        """After a fork of this process, leave the parent's children and server alone."""
        if self._owner != os.getpid():
            self._owner = os.getpid()
            self._server, self._spares, self._children = None, [], set()
            self._replenishing = False

    def _server_for_use(self, *, wait: bool) -> ForkServer:
        if self._closed:
            raise ScaffolderError("The cookiecutter pool is closed")
        self._adopt()
        server = self._server
        if server is None or not server.usable():
            if server is not None:
                server.stop()
            server = ForkServer(self._python)
            self._server = server
        if wait:
            try:
                server.wait_ready(self._start_timeout)
            except ServerGone as exc:
                server.stop()
                self._server = None
                raise ScaffolderError(f"The cookiecutter pool failed to start: {exc}") from None
        return server

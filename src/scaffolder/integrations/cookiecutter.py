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

The protocol (JSON over pipes, see `cookiecutter_child`) carries a `RenderJob` in and log
lines, hook output and a result or error out. A cancel kills the child's process group.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import selectors
import signal as _signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffolder.errors import InputError, ScaffolderError, TaskCancelledError
from scaffolder.integrations import Cancellation

log = logging.getLogger(__name__)

#: Seconds to wait for the fork server to import cookiecutter.
START_TIMEOUT_SECONDS = 60.0
#: Seconds a render (hooks included) may take before its child is killed.
RENDER_TIMEOUT_SECONDS = 600.0
#: Children kept forked and warmed up, each waiting for a job.
DEFAULT_SPARES = 1
#: Output lines forwarded per render; the rest is dropped with a note.
MAX_OUTPUT_LINES = 1000

CONTEXT_FILE = "cookiecutter.json"

#: Environment the fork server (and so every render and hook) starts from.
_PASSED_ENV = ("PATH", "LANG", "LANGUAGE", "TZ")

_FORK = b"fork"
_SPARE = b"spare"

_BOOTSTRAP = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from scaffolder.integrations.cookiecutter_child import main; main(int(sys.argv[1]))"
)


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
        spares: int = DEFAULT_SPARES,
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
        self._server: _ForkServer | None = None
        self._spares: list[_Child] = []
        self._children: set[_Child] = set()
        self._replenishing = False
        self._closed = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CookiecutterPool:
        """A pool as ``scaffolder.cookiecutter`` configures it (``spares``: children kept
        ready, default 1; 0 keeps only the fork server)."""
        scaffolder = config.get("scaffolder")
        section = scaffolder.get("cookiecutter") if isinstance(scaffolder, Mapping) else None
        spares = section.get("spares", DEFAULT_SPARES) if isinstance(section, Mapping) else None
        if spares is None:
            spares = DEFAULT_SPARES
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

    def _take(self, *, spare: bool = True) -> _Child:
        with self._lock:
            self._adopt()
            while spare and self._spares:
                child = self._spares.pop(0)
                if child.waiting():
                    self._children.add(child)
                    return child
                child.close()
        child = self._fork(_FORK)
        with self._lock:
            self._children.add(child)
        return child

    def _fork(self, kind: bytes) -> _Child:
        for _attempt in (1, 2):
            job_r, job_w = os.pipe()
            result_r, result_w = os.pipe()
            output_r, output_w = os.pipe()
            try:
                with self._lock:
                    server = self._server_for_use(wait=True)
                    try:
                        pid = server.fork(kind, (job_r, result_w, output_w))
                    except _ServerGone:
                        server.stop()
                        self._server = None
                        pid = None
                if pid is not None:
                    spare = kind == _SPARE
                    return _Child(
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
                child = self._fork(_SPARE)
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

    def _server_for_use(self, *, wait: bool) -> _ForkServer:
        if self._closed:
            raise ScaffolderError("The cookiecutter pool is closed")
        self._adopt()
        server = self._server
        if server is None or not server.usable():
            if server is not None:
                server.stop()
            server = _ForkServer(self._python)
            self._server = server
        if wait:
            try:
                server.wait_ready(self._start_timeout)
            except _ServerGone as exc:
                server.stop()
                self._server = None
                raise ScaffolderError(f"The cookiecutter pool failed to start: {exc}") from None
        return server


class _ServerGone(Exception):
    """The fork server died or said something unexpected."""


class _ForkServer:
    """One ``cookiecutter_child.main`` process and our end of its socket."""

    def __init__(self, python: str) -> None:
        self.owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        paths = [os.path.abspath(p) for p in sys.path if p]
        env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV or k.startswith("LC_")}
        env["HOME"] = os.devnull
        try:
            self.process = subprocess.Popen(
                [python, "-I", "-c", _BOOTSTRAP, str(theirs.fileno()), json.dumps(paths)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd="/",
                start_new_session=True,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.control = ours
        self.ready = False

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        message = self._receive(timeout)
        if not message.get("ready"):
            raise _ServerGone(str(message.get("error") or message).strip().splitlines()[-1])
        self.ready = True

    def fork(self, kind: bytes, fds: tuple[int, int, int]) -> int:
        try:
            socket.send_fds(self.control, [kind], list(fds))
        except OSError as exc:
            raise _ServerGone(str(exc)) from None
        message = self._receive(10.0)
        pid = message.get("pid")
        if not isinstance(pid, int):
            raise _ServerGone(str(message))
        return pid

    def stop(self) -> None:
        self.control.close()
        if self.owner != os.getpid():
            return
        try:
            self.process.wait(timeout=5)
        except Exception:
            self.process.kill()
            self.process.wait()

    def _receive(self, timeout: float) -> dict[str, Any]:
        self.control.settimeout(timeout)
        try:
            data = self.control.recv(65536)
        except OSError as exc:
            raise _ServerGone(str(exc) or type(exc).__name__) from None
        if not data:
            raise _ServerGone("it exited")
        message: dict[str, Any] = json.loads(data)
        return message


@dataclass(eq=False, kw_only=True)
class _Child:
    """Our ends of one render child's pipes; `terminate` kills its process group."""

    pid: int
    job_w: int
    result_r: int
    output_r: int
    spare: bool = False
    timed_out: bool = False
    _done: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)

    def waiting(self) -> bool:
        """Whether a spare is still alive (it writes nothing before its job: EOF is death)."""
        readable, _, _ = select.select([self.result_r], [], [], 0)
        return not readable

    def send(self, job: bytes) -> None:
        try:
            with os.fdopen(self.job_w, "wb", closefd=False) as stream:
                stream.write(job)
        except BrokenPipeError:
            pass  # the child died; collect() reports it
        finally:
            os.close(self.job_w)
            self.job_w = -1

    def terminate(self) -> None:
        if self._done:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, _signal.SIGKILL)

    def collect(
        self,
        *,
        timeout: float,
        on_output: Callable[[str], None],
        on_message: Callable[[dict[str, Any]], None],
    ) -> None:
        """Read the pipes until the child answers (or dies), passing on output lines and
        protocol messages."""
        lines = _Lines(on_output)
        result_buffer = b""
        deadline = time.monotonic() + timeout
        answered = False
        with selectors.DefaultSelector() as selector:
            selector.register(self.result_r, selectors.EVENT_READ)
            selector.register(self.output_r, selectors.EVENT_READ)
            while not answered and self.result_r in selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.timed_out = True
                    break
                for key, _events in selector.select(min(remaining, 1.0)):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fd)
                    elif key.fd == self.output_r:
                        lines.feed(data)
                    else:
                        result_buffer += data
                        *complete, result_buffer = result_buffer.split(b"\n")
                        for line in complete:
                            message = json.loads(line)
                            answered = answered or "log" not in message
                            on_message(message)
            # The child has answered or died: stop anything its hooks left running, then take
            # the output they wrote (it is in the pipe already).
            self.terminate()
            self._done = True
            if self.output_r in selector.get_map():
                while selector.select(0):
                    data = os.read(self.output_r, 65536)
                    if not data:
                        break
                    lines.feed(data)
        lines.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.terminate()
        self._done = True
        for fd in (self.job_w, self.result_r, self.output_r):
            if fd >= 0:
                os.close(fd)


class _Lines:
    """Splits raw output into lines for ``sink``, up to `MAX_OUTPUT_LINES`."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink
        self._buffer = b""
        self._count = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        for line in complete:
            self._emit(line)

    def flush(self) -> None:
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = b""

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if not text.strip():
            return
        self._count += 1
        if self._count <= MAX_OUTPUT_LINES:
            self._sink(text)
        elif self._count == MAX_OUTPUT_LINES + 1:
            self._sink(f"(further output dropped after {MAX_OUTPUT_LINES} lines)")

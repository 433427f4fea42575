"""The scaffolder side of the render protocol (see `cookiecutter_child` for the other).

`ForkServer` is one ``cookiecutter_child.main`` process and our end of its control socket;
`RenderChild` is our end of one child's pipes (job in, result and output out). Messages are
JSON: one per ``SOCK_SEQPACKET`` packet on the control socket, one per line on the result pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import signal as _signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaffolder import cpu
from scaffolder.integrations.cookiecutter_child import FORK, SPARE

__all__ = ["FORK", "SPARE", "ForkServer", "OutputLines", "RenderChild", "ServerGone"]

#: Output lines forwarded per render; the rest is dropped with a note.
MAX_OUTPUT_LINES = 1000

#: Environment the fork server (and so every render and hook) starts from.
_PASSED_ENV = ("PATH", "LANG", "LANGUAGE", "TZ")

_BOOTSTRAP = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from scaffolder.integrations.cookiecutter_child import main; "
    "main(int(sys.argv[1]), sys.argv[3] if len(sys.argv) > 3 else '')"
)


class ServerGone(Exception):
    """The fork server died or said something unexpected."""


class ForkServer:
    """One ``cookiecutter_child.main`` process and our end of its socket."""

    def __init__(self, python: str) -> None:
        self.owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        paths = [os.path.abspath(p) for p in sys.path if p]
        env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV or k.startswith("LC_")}
        env["HOME"] = os.devnull
        argv = [python, "-I", "-c", _BOOTSTRAP, str(theirs.fileno()), json.dumps(paths)]
        unpinned = cpu.unpinned_cpus()
        if unpinned is not None:  # renders use the CPUs we had before --cpu pinned us
            argv.append(cpu.format_cpus(unpinned))
        try:
            self.process = subprocess.Popen(
                argv,
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
            raise ServerGone(str(message.get("error") or message).strip().splitlines()[-1])
        self.ready = True

    def fork(self, kind: bytes, fds: tuple[int, int, int]) -> int:
        try:
            socket.send_fds(self.control, [kind], list(fds))
        except OSError as exc:
            raise ServerGone(str(exc)) from None
        message = self._receive(10.0)
        pid = message.get("pid")
        if not isinstance(pid, int):
            raise ServerGone(str(message))
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
            raise ServerGone(str(exc) or type(exc).__name__) from None
        if not data:
            raise ServerGone("it exited")
        message: dict[str, Any] = json.loads(data)
        return message


@dataclass(eq=False, kw_only=True)
class RenderChild:
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
        lines = OutputLines(on_output)
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


class OutputLines:
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

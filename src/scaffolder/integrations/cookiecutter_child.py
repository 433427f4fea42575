"""The pool's side of the render protocol: a fork server that has imported cookiecutter.

`CookiecutterPool` starts this module's `main` in a fresh interpreter (``python -I``) with one
end of a ``SOCK_SEQPACKET`` socket pair. The server imports cookiecutter and Jinja, renders a
small template once, says ``{"ready": true}``, and waits. It never renders a job itself: each
request (``fork``, or ``spare`` for a child that first warms up with a throw-away render)
carries three pipe ends (job in, result out, output out); the server forks and answers
``{"pid": n}``. The child, a copy of a process that has never run a job:

1. makes itself a process group leader (so a cancel can kill it with its hooks);
2. points stdout and stderr at the output pipe (hook output reaches the task log);
3. reads the job (JSON) to EOF (an empty job: the spare is not needed, it exits);
4. points ``HOME`` and ``TMPDIR`` into the step's directory and renders, writing JSON lines to
   the result pipe: ``{"log": ...}`` as it goes, then one ``{"result": ...}`` or
   ``{"error": {"kind", "message"}}``;
5. exits, so nothing a template did (``sys.path``, ``os.environ``, imported extensions,
   monkey patches, threads) reaches the next job.

The server exits when its socket reaches EOF, i.e. when the scaffolder process closes the pool
or dies.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

#: Requests the server takes: a child for a job now, or a spare that warms up and waits.
FORK = b"fork"
SPARE = b"spare"


def main(control_fd: int, cpus: str = "") -> None:
    """Run the fork server on the inherited socket ``control_fd`` until it is closed.

    ``cpus`` ("0,1"): the CPUs to run on, when the scaffolder process is pinned to one
    (``--cpu``); its renders are processes of their own and need not share its core.
    """
    if cpus:
        from scaffolder.cpu import restore_cpus

        restore_cpus(cpus)
    control = socket.socket(fileno=control_fd)
    try:
        render, warm_up = _preload()
    except BaseException:
        _send(control, {"error": traceback.format_exc()})
        return
    _send(control, {"ready": True, "pid": os.getpid()})
    # Children are reaped by the kernel: the scaffolder process watches them through their
    # pipes, not through wait().
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, 64, 3)
        except (OSError, KeyboardInterrupt):
            return
        if not data:
            return
        if data not in (FORK, SPARE) or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            _send(control, {"error": "malformed fork request"})
            continue
        pid = os.fork()
        if pid == 0:
            _child(control, fds, render, warm_up if data == SPARE else None)
        with contextlib.suppress(OSError):  # the child may have got there first
            os.setpgid(pid, pid)
        for fd in fds:
            os.close(fd)
        _send(control, {"pid": pid})


def _preload() -> tuple[Any, Callable[[], None]]:
    """Import everything a render needs and render a small template, so that children start
    warm; return the render module and a function that renders that template again."""
    from scaffolder.integrations import cookiecutter_render

    for name in ("cookiecutter", "binaryornot"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    template = tempfile.mkdtemp(prefix="scaffolder-warm-up-")
    atexit.register(shutil.rmtree, template, ignore_errors=True)
    project = os.path.join(template, "{{cookiecutter.slug}}")
    os.makedirs(os.path.join(project, "{{cookiecutter.slug}}"))
    with open(os.path.join(template, "cookiecutter.json"), "w") as handle:
        json.dump(
            {
                "name": "Warm Up",
                "slug": "{{ cookiecutter.name|lower|replace(' ', '-') }}",
                "kind": ["a", "b"],
                "flag": False,
                "_private": "{{ x }}",
            },
            handle,
        )
    with open(os.path.join(project, "{{cookiecutter.slug}}", "README.md"), "w") as handle:
        handle.write("# {{ cookiecutter.name }}\n{% if cookiecutter.flag %}x{% endif %}\n")

    def warm_up(*, trusted: bool = False) -> None:
        saved_path = list(sys.path)
        out = tempfile.mkdtemp(prefix="scaffolder-warm-up-out-")
        try:
            cookiecutter_render.run(
                {
                    "template_dir": template,
                    "layout": "cookiecutter",
                    "output_dir": out,
                    "values": {"name": "Warm"},
                    "trusted": trusted,
                    "source": "warm-up",
                    "trust_hint": "",
                    "template": "warm-up",
                    "replay_dir": os.path.join(out, "replay"),
                },
                lambda _line: None,
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)
            sys.path[:] = saved_path

    warm_up(trusted=True)
    warm_up(trusted=False)
    # Objects that exist now are shared with every child: keep the collector off their pages.
    gc.freeze()
    return cookiecutter_render, warm_up


def _child(
    control: socket.socket,
    fds: list[int],
    render: Any,
    warm_up: Callable[[], None] | None,
) -> None:
    status = 0
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with contextlib.suppress(OSError):  # the server may have done it already
            os.setpgid(0, 0)
        job_fd, result_fd, output_fd = fds
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.set_inheritable(job_fd, False)
        os.set_inheritable(result_fd, False)
        if warm_up is not None:
            # A spare: take the copy-on-write faults and first-run costs now, not in a task.
            warm_up()
        with os.fdopen(job_fd, "rb") as job_file:
            data = job_file.read()
        if not data:
            return  # a spare the scaffolder process no longer needs
        job = json.loads(data)
        with os.fdopen(result_fd, "w", encoding="utf-8") as result:

            def emit(message: dict[str, Any]) -> None:
                result.write(json.dumps(message, default=str) + "\n")
                result.flush()

            _prepare(job)
            try:
                answer: dict[str, Any] = {
                    "result": render.run(job, lambda line: emit({"log": line}))
                }
            except render.RenderError as exc:
                answer = {"error": {"kind": exc.kind, "message": exc.message}}
            except Exception as exc:
                answer = {"error": {"kind": "error", "message": f"{type(exc).__name__}: {exc}"}}
            _flush()
            # The scaffolder process stops reading once it has the answer: it comes last.
            emit(answer)
    except BaseException:
        status = 1
    finally:
        _flush()
        os._exit(status)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # the pipe may be gone; we exit anyway
            stream.flush()


def _prepare(job: dict[str, Any]) -> None:
    """Point HOME, TMPDIR and the working directory into the job's directory."""
    for key in ("home", "tmp"):
        os.makedirs(job[key], exist_ok=True)
    os.environ["HOME"] = job["home"]
    os.environ["TMPDIR"] = job["tmp"]
    if job.get("dry_run"):
        os.environ["SCAFFOLDER_DRY_RUN"] = "1"
    tempfile.tempdir = job["tmp"]
    os.chdir(job["tmp"])


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        control.send(json.dumps(message).encode("utf-8"))

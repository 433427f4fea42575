"""Real git for tests: a smart-HTTP server on loopback, and a spy on the ``git`` we run.

`GitHttpServer` is ``git http-backend`` behind a tiny WSGI app. It demands
``Authorization: Basic`` with one user name and token (401 otherwise, as GitHub does) and
records every request's headers, so tests can check what a push sent.

`GitSpy` puts a ``git`` first on ``PATH`` that records each call's argv and environment and
then runs the real git (or fails a ``push``, on demand), so tests can check what we handed git
and that refused input never reached it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class GitHttpServer:
    """``http://127.0.0.1:<port>/<owner>/<repo>.git`` for bare repositories under ``root``."""

    root: Path
    username: str
    token: str
    requests: list[dict[str, str]] = field(default_factory=list)
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._server = make_server("127.0.0.1", 0, self._app, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").title(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        self.requests.append(
            {"path": environ.get("PATH_INFO", ""), "query": environ.get("QUERY_STRING", "")}
            | headers
        )
        expected = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        if environ.get("HTTP_AUTHORIZATION") != f"Basic {expected}":
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
            )
            return [b"authentication required\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        cgi_env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": self.username,
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        if "HTTP_CONTENT_ENCODING" in environ:
            cgi_env["HTTP_CONTENT_ENCODING"] = environ["HTTP_CONTENT_ENCODING"]
        if "HTTP_GIT_PROTOCOL" in environ:
            cgi_env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=cgi_env, capture_output=True, check=False
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = "200 OK"
        response_headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                response_headers.append((name.strip(), value.strip()))
        start_response(status, response_headers)
        return [payload]


def serve_git_http(root: Path, *, username: str, token: str) -> Iterator[GitHttpServer]:
    """Start a server over ``root`` for the duration of a fixture."""
    server = GitHttpServer(root=root, username=username, token=token)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_SPY = """#!/bin/sh
call=$(mktemp "{calls}/call.$(date +%s%N).XXXXXX")
printf '%s\\0' "$@" > "$call.argv"
env -0 > "$call.env"
if [ -e "{calls}/fail-push" ]; then
  for arg in "$@"; do
    if [ "$arg" = push ]; then echo "fatal: simulated network failure" >&2; exit 128; fi
  done
fi
exec {git} "$@"
"""


@dataclass(frozen=True)
class GitCall:
    """One ``git`` command as the spy saw it."""

    argv: tuple[str, ...]
    env: dict[str, str]

    @property
    def command(self) -> str:
        """The git subcommand (first argument that is not a global option)."""
        args = list(self.argv)
        while args:
            arg = args.pop(0)
            if arg in ("-c", "-C"):
                args.pop(0)
            elif not arg.startswith("-"):
                return arg
        return ""


@dataclass
class GitSpy:
    """A ``git`` wrapper first on ``PATH``."""

    directory: Path

    @classmethod
    def install(cls, directory: Path) -> GitSpy:
        real = shutil.which("git")
        assert real, "git is not installed"
        (directory / "calls").mkdir(parents=True)
        script = directory / "bin" / "git"
        script.parent.mkdir()
        script.write_text(_SPY.format(calls=directory / "calls", git=real))
        script.chmod(0o755)
        return cls(directory)

    @property
    def bin(self) -> Path:
        return self.directory / "bin"

    def calls(self) -> list[GitCall]:
        found = []
        for argv in sorted((self.directory / "calls").glob("call.*.argv")):
            env_file = argv.with_suffix(".env")
            env = dict(
                item.split("=", 1)
                for item in env_file.read_bytes().decode().split("\0")
                if "=" in item
            )
            args = tuple(argv.read_bytes().decode().split("\0")[:-1])
            found.append(GitCall(argv=args, env=env))
        return found

    def commands(self) -> list[str]:
        return [call.command for call in self.calls()]

    def clear(self) -> None:
        for path in (self.directory / "calls").glob("call.*"):
            path.unlink()

    def fail_pushes(self, fail: bool = True) -> None:
        marker = self.directory / "calls" / "fail-push"
        if fail:
            marker.touch()
        elif marker.exists():
            marker.unlink()


def real_git(*args: str, cwd: Path | None = None) -> str:
    """Run the real git (no user config) for a test's own checks; its output."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd or "/nonexistent"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout

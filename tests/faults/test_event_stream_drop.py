"""Clients dropping their event streams mid-task, against a real ``scaffolder serve``."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from flask.testing import FlaskClient

from scaffolder.services import Services
from tests.faults.harness import (
    SCAFFOLDER_BIN,
    SECRET,
    Paths,
    assert_no_secret_stored,
    register,
    status,
    steps,
    wait_until,
)
from tests.postgres.cluster import free_port

pytestmark = pytest.mark.both_engines

DROPPED = 5
#: More streams than the HTTP pool had threads before it grew (32).
OPEN_STREAMS = 48


def _request(port: int, method: str, path: str, body: object = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = json.dumps(body) if body is not None else None
        conn.request(method, path, payload, {"Content-Type": "application/json"})
        res = conn.getresponse()
        return res.status, res.read().decode()
    finally:
        conn.close()


def _create(port: int, name: str) -> str:
    code, text = _request(
        port,
        "POST",
        "/api/scaffolder/v2/tasks",
        {"templateRef": f"template:default/{name}", "values": {}, "secrets": {"token": SECRET}},
    )
    assert code == 201, text
    return str(json.loads(text)["id"])


def _stream_clients(port: int) -> float:
    _, text = _request(port, "GET", "/metrics")
    match = re.search(r"^scaffolder_event_stream_clients (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _open_and_drop(port: int, task_id: str) -> None:
    """Read the first event of the task's stream, then reset the connection."""
    sock = _open_stream(port, task_id)
    # An RST, not a polite FIN: the client vanished.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_dropped_event_streams_leave_nothing_behind(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str, site: Path
) -> None:
    services, _ = api
    paths = Paths(root=tmp_path / "effects")
    register(services, "gated", steps(paths))
    register(services, "quick", steps(paths, block=False))
    with _serve(tmp_path, db_url, site, "--threads", "8") as (proc, port):
        # Warm up (the event writer thread starts with the first task), then count.
        warm = _create(port, "quick")
        wait_until(lambda: status(services, warm) == "completed", 60, "the warm-up task")
        wait_until(lambda: _stream_clients(port) == 0, 30, "no stream")
        baseline = _threads(proc.pid)

        task_id = _create(port, "gated")
        for _ in range(DROPPED):
            _open_and_drop(port, task_id)
        assert status(services, task_id) == "processing"
        paths.gate.touch()
        wait_until(lambda: status(services, task_id) == "completed", 60, "the task to complete")
        wait_until(lambda: _stream_clients(port) == 0, 30, "the dropped streams to be closed")
        wait_until(lambda: _threads(proc.pid) <= baseline, 30, "the thread count to settle")

        # Still serving: a new stream of the finished task replays it to its completion.
        code, text = _request(port, "GET", f"/api/scaffolder/v2/tasks/{task_id}/eventstream")
        assert code == 200
        types = re.findall(r"^event: (\w+)$", text, re.MULTILINE)
        assert types[-1] == "completion"
        assert types.count("completion") == 1
        assert paths.lines(paths.runs).count(task_id) == 1
        assert SECRET not in text
    assert_no_secret_stored(services.engine)


@contextmanager
def _serve(
    tmp_path: Path, db_url: str, site: Path, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real ``scaffolder serve`` on the test's database: (process, port).

    Fails the test if its log shows a traceback.
    """
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backend": {
                    "database": {"connection": db_url},
                    "workingDirectory": str(tmp_path / "serve-work"),
                    "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
                },
                "catalog": {"locations": []},
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    log = tmp_path / "serve.log"
    command = [str(SCAFFOLDER_BIN), "--log-level", "WARNING", "serve", "--config", str(config)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return _request(port, "GET", "/metrics")[0] == 200
            except OSError:
                return False

        wait_until(up, 60, "the server to listen")
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    output = log.read_text()
    assert "Traceback" not in output, output


def _open_stream(port: int, task_id: str) -> socket.socket:
    """An event stream of the task, open and served (its first event read), left open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"GET /api/scaffolder/v2/tasks/{task_id}/eventstream HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    received = b""
    while b"event: " not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return sock


def test_many_open_event_streams_leave_the_api_answering(
    api: tuple[Services, FlaskClient], tmp_path: Path, db_url: str, site: Path
) -> None:
    # Each open stream holds one of the server's HTTP threads for as long as its task runs:
    # with the default pool, a few dozen people watching their tasks must not starve
    # everyone else's requests (they queued behind the streams with a pool of 32).
    services, _ = api
    paths = Paths(root=tmp_path / "effects")
    register(services, "gated", steps(paths))
    with _serve(tmp_path, db_url, site) as (_proc, port):
        task_id = _create(port, "gated")
        streams = [_open_stream(port, task_id) for _ in range(OPEN_STREAMS)]
        try:
            wait_until(lambda: _stream_clients(port) == OPEN_STREAMS, 30, "the streams open")
            code, text = _request(port, "GET", f"/api/scaffolder/v2/tasks/{task_id}")
            assert code == 200, text
            assert json.loads(text)["status"] == "processing"
        finally:
            paths.gate.touch()
            for sock in streams:
                sock.close()
        wait_until(lambda: status(services, task_id) == "completed", 60, "the task to complete")

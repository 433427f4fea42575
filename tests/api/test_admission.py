"""TaskCreationGate: task creations one at a time; every other request passes freely."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from scaffolder.api.admission import CREATE_TASK_PATH, TaskCreationGate


class _Body(list[bytes]):
    closed = False

    def close(self) -> None:
        self.closed = True


class _App:
    """A WSGI app that holds each request until released and counts how many are inside."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.lock = threading.Lock()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.bodies: list[_Body] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        self.entered.release()
        self.release.wait(30)
        with self.lock:
            self.inside -= 1
        start_response("201 Created", [("Content-Type", "application/json")])
        body = _Body([b'{"id": "x"}'])
        self.bodies.append(body)
        return body


def _call(gate: TaskCreationGate, method: str, path: str, out: list[bytes]) -> None:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path}
    out.extend(gate(environ, lambda *_: None))


def _run(method: str, path: str, n: int = 4) -> _App:
    app = _App()
    gate = TaskCreationGate(app)
    out: list[bytes] = []
    threads = [threading.Thread(target=_call, args=(gate, method, path, out)) for _ in range(n)]
    for thread in threads:
        thread.start()
    assert app.entered.acquire(timeout=30)  # one is inside
    # The others are either inside too (not gated) or waiting at the gate.
    for _ in range(n - 1):
        if not app.entered.acquire(timeout=0.2):
            break
    app.release.set()
    for thread in threads:
        thread.join(30)
    assert out == [b'{"id": "x"}'] * n
    return app


def test_creations_run_one_at_a_time_and_their_bodies_are_closed() -> None:
    app = _run("POST", CREATE_TASK_PATH)
    assert app.most == 1
    assert all(body.closed for body in app.bodies)


def test_other_requests_are_not_gated() -> None:
    assert _run("GET", CREATE_TASK_PATH).most == 4
    assert _run("POST", "/api/scaffolder/v2/tasks/abc/retry").most == 4

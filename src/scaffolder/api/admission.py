"""Task creation one request at a time per process, so event streams stay live under a burst.

A burst of ``POST /v2/tasks`` (a script, a migration, many people at 9 a.m.) used to run on
as many HTTP threads as there were clients, each wanting the GIL for the whole request. A
stream thread woken by a task's new log line then queued for the GIL behind all of them, at
every step of its way to the socket: with 8 clients posting, the API's part of an event's
latency reached 137-440 ms at p99 (`bench/bench_scale.py`, 3 runs), against 54-79 ms with
creations admitted one at a time (3 runs interleaved; both figures from before the bench's
stream observer stopped pausing for its own garbage collections, which added up to ~180 ms
to some arrivals). A creation is short (validation and
one insert, ~2.5 ms), so one at a time still admits hundreds a second; everything else (event
streams, long polls, dry runs, the catalog, reads) is not gated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: The route a burst goes to.
CREATE_TASK_PATH = "/api/scaffolder/v2/tasks"


class TaskCreationGate:
    """WSGI middleware: ``POST /api/scaffolder/v2/tasks`` at most ``limit`` at a time.

    The response is built entirely inside the gate (it is a small JSON body), so the gate is
    held for the request's work, not for the client's reading of it.
    """

    def __init__(self, app: WsgiApp, *, limit: int = 1) -> None:
        self._app = app
        self._gate = threading.BoundedSemaphore(limit)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != (
            CREATE_TASK_PATH
        ):
            return self._app(environ, start_response)
        with self._gate:
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

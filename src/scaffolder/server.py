"""``scaffolder serve``: gunicorn with one threaded worker process.

One process holds the API and the task workers (Backstage's embedded default). gunicorn's
``gthread`` worker writes each chunk of a streamed response straight to the socket, so the
event stream is not buffered. The master imports nothing of ours beyond settings, so it stays
small; the worker migrates the database and builds the services.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from scaffolder.settings import Settings

log = logging.getLogger(__name__)


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        self._services: Any = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from scaffolder.app import create_app
        from scaffolder.services import build_services

        self._services = build_services(self._settings, with_worker=True, migrate=True)
        return create_app(services=self._services)


def serve(settings: Settings, *, host: str, port: int, threads: int = 32) -> None:
    """Serve until SIGTERM/SIGINT."""

    def worker_exit(_server: Any, worker: Any) -> None:
        services = getattr(worker.app, "_services", None)
        if services is not None:
            services.close()

    options = {
        "bind": f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        # An event stream or long poll may stay open for minutes.
        "timeout": 0,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "worker_exit": worker_exit,
        "proc_name": "scaffolder",
    }
    log.info("serving on http://%s:%d", host, port)
    _Server(settings, options).run()

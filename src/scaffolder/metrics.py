"""Prometheus metrics: one registry per services container (nothing global, nothing at import).

What is measured where:

- ``scaffolder_tasks{status}`` and ``scaffolder_task_queue_depth`` are counted in the database
  at scrape time, so every API replica reports the same, whole-deployment numbers;
- ``scaffolder_step_duration_seconds{action,status}`` and
  ``scaffolder_task_claim_latency_seconds`` are observed by the runner, in the process that
  runs the task (``scaffolder serve``'s embedded workers, or ``scaffolder worker
  --metrics-port``);
- ``scaffolder_event_stream_clients`` counts the open SSE streams of this API process;
- plus the client library's process and platform collectors.

``/metrics`` needs no token unless ``backend.metrics.token`` is set.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cheroot import wsgi
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from scaffolder.errors import InputError
from scaffolder.tasks.model import TaskStatus
from scaffolder.tasks.store import SqlTaskStore, TaskFilter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

#: Step durations run from a log line (milliseconds) to a CloudFormation stack (many minutes).
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Time from a task's creation to a worker starting it.
CLAIM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

#: Backstage's health endpoints, answered by a worker's metrics server too.
HEALTH_PATHS = ("/.backstage/health/v1/liveness", "/.backstage/health/v1/readiness")

_BEARER = re.compile(r"^Bearer[ ]+(\S+)$", re.IGNORECASE)


class Metrics:
    """The registry and the instruments the runner and the API write to.

    Implements the runner's `RunObserver`.
    """

    def __init__(
        self,
        *,
        store: SqlTaskStore | None = None,
        token: str | None = None,
    ) -> None:
        self.token = token
        self._store = store
        self.registry = CollectorRegistry()
        self.step_duration = Histogram(
            "scaffolder_step_duration_seconds",
            "Duration of task steps by action id and outcome (completed, failed, cancelled).",
            ["action", "status"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.claim_latency = Histogram(
            "scaffolder_task_claim_latency_seconds",
            "Time from a task's creation to the start of its first run.",
            buckets=CLAIM_BUCKETS,
            registry=self.registry,
        )
        self.event_stream_clients = Gauge(
            "scaffolder_event_stream_clients",
            "Open task event streams (SSE) served by this process.",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        if store is not None:
            self.registry.register(_TaskCounts(store))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store: SqlTaskStore) -> Metrics:
        """Metrics over ``store``, with ``backend.metrics.token`` if set."""
        section = (config.get("backend") or {}).get("metrics") or {}
        if not isinstance(section, Mapping):
            raise InputError("backend.metrics must be a mapping")
        token = section.get("token")
        if token is not None and (not isinstance(token, str) or len(token) < 8):
            raise InputError("backend.metrics.token must be a string of at least 8 characters")
        return cls(store=store, token=token)

    # --- RunObserver ---------------------------------------------------------------------

    def task_claimed(self, waited_seconds: float | None) -> None:
        """Observe the claim latency of a task's first run (retries are not counted)."""
        if waited_seconds is not None:
            self.claim_latency.observe(waited_seconds)

    def step_finished(self, action_id: str, status: str, seconds: float) -> None:
        """Observe one step's duration."""
        self.step_duration.labels(action=action_id, status=status).observe(seconds)

    # --- exposition ----------------------------------------------------------------------

    def authorized(self, authorization: str | None) -> bool:
        """Whether a scrape with this ``Authorization`` header may read the metrics."""
        if self.token is None:
            return True
        match = _BEARER.match(authorization or "")
        return match is not None and hmac.compare_digest(
            match.group(1).encode(), self.token.encode()
        )

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format the scraper asked for, and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """A bare WSGI app for ``scaffolder worker --metrics-port``.

        It serves ``/metrics``, and the health endpoints so that the image's HEALTHCHECK holds
        for worker containers too.
        """
        if environ.get("PATH_INFO") in HEALTH_PATHS:
            body = b'{"status":"ok"}'
            start_response(
                "200 OK",
                [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", "15")],
            )
            return [body]
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        if not self.authorized(environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("Content-Length", "0")])
            return [b""]
        body, content_type = self.exposition(environ.get("HTTP_ACCEPT"))
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [body]


class _TaskCounts(Collector):
    """Counts tasks by status in the database, at scrape time."""

    def __init__(self, store: SqlTaskStore) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        try:
            counts = {
                status: self._store.list_tasks(TaskFilter(status=[status.value], limit=0))[1]
                for status in TaskStatus
            }
        except Exception:
            log.warning("counting tasks for /metrics failed", exc_info=True)
            return
        tasks = GaugeMetricFamily(
            "scaffolder_tasks", "Tasks in the database by status.", labels=["status"]
        )
        for status, count in counts.items():
            tasks.add_metric([status.value], count)
        yield tasks
        yield GaugeMetricFamily(
            "scaffolder_task_queue_depth",
            "Open tasks waiting for a worker.",
            value=counts[TaskStatus.OPEN],
        )


def serve_metrics(metrics: Metrics, host: str, port: int) -> wsgi.Server:
    """Serve ``metrics.wsgi_app`` on ``host:port`` (0: any free port) in a thread.

    Returns:
        The running server: ``bind_addr`` says where, ``stop()`` stops it.
    """
    server = wsgi.Server((host, port), metrics.wsgi_app, numthreads=2, server_name="scaffolder")
    server.prepare()
    thread = threading.Thread(target=server.serve, name="scaffolder-metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d/metrics", host, server.bind_addr[1])
    return server

"""Build, run and gracefully stop the gRPC server."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from app import greeter
from app.config import Settings

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True, kw_only=True)
class RunningServer:
    """A started server, the port it actually bound, and its health servicer."""

    server: grpc.Server
    port: int
    health: health.HealthServicer

    def stop(self, grace: float | None) -> None:
        """Report NOT_SERVING on every service, then let in-flight RPCs finish."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def start_server(settings: Settings) -> RunningServer:
    """Start the server with the health service and the greeter registered.

    A port of 0 binds a free port (the tests use it); ``RunningServer.port`` says which.

    Raises:
        RuntimeError: The address could not be bound.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.max_workers))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_generic_rpc_handlers((greeter.handler(),))
    try:
        port = server.add_insecure_port(settings.address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot bind {settings.address}") from exc
    if port == 0:
        raise RuntimeError(f"cannot bind {settings.address}")
    server.start()
    # "" is the overall health that Service Connect's and ECS's checks ask for.
    for service in ("", greeter.SERVICE_NAME):
        health_servicer.set(service, SERVING)
    log.info("serving", extra={"address": settings.address, "port": port})
    return RunningServer(server=server, port=port, health=health_servicer)


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain for ``settings.grace_seconds``."""
    running = start_server(settings)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stopping.wait()
    running.stop(settings.grace_seconds)
    log.info("stopped")

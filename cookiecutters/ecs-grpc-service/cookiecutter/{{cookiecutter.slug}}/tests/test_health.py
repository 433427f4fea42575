from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app import greeter, healthcheck
from app.server import RunningServer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def check(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_overall_health_is_serving(channel: grpc.Channel) -> None:
    assert check(channel, "") == SERVING


def test_greeter_service_is_serving(channel: grpc.Channel) -> None:
    assert check(channel, greeter.SERVICE_NAME) == SERVING


def test_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        check(channel, "no.such.Service")
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND


def test_graceful_shutdown_reports_not_serving(
    server: RunningServer, channel: grpc.Channel
) -> None:
    server.health.enter_graceful_shutdown()
    assert check(channel, "") == NOT_SERVING
    assert check(channel, greeter.SERVICE_NAME) == NOT_SERVING


def test_container_probe_passes_against_a_serving_server(server: RunningServer) -> None:
    assert healthcheck.check(f"127.0.0.1:{server.port}") is True


def test_container_probe_fails_when_nothing_listens(server: RunningServer) -> None:
    port = server.port
    server.stop(grace=None)
    assert healthcheck.check(f"127.0.0.1:{port}", timeout=0.5) is False

"""``python -m app.healthcheck``: the container health check.

Calls ``grpc.health.v1.Health/Check`` on the local server and exits 0 only for SERVING, so
the image needs no curl or grpc_health_probe binary.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.config import load_settings

TIMEOUT_SECONDS = 2.0


def check(target: str, service: str = "", timeout: float = TIMEOUT_SECONDS) -> bool:
    """Whether the server at ``target`` reports ``service`` as SERVING."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    service = args[0] if args else ""
    port = load_settings().port
    return 0 if check(f"127.0.0.1:{port}", service) else 1


if __name__ == "__main__":
    sys.exit(main())

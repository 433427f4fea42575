from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from app.config import Settings
from app.server import RunningServer, start_server


@pytest.fixture
def server() -> Iterator[RunningServer]:
    """The real server, in-process, on a free loopback port."""
    running = start_server(Settings(host="127.0.0.1", port=0, max_workers=4))
    yield running
    running.stop(grace=None)


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=5)
        yield channel

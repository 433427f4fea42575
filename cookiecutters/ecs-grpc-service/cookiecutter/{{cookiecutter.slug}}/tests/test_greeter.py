from __future__ import annotations

import grpc
import pytest
from google.protobuf import wrappers_pb2

from app import greeter


def say_hello(channel: grpc.Channel, name: str) -> str:
    call = channel.unary_unary(
        f"/{greeter.SERVICE_NAME}/SayHello",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    return call(wrappers_pb2.StringValue(value=name), timeout=5).value


def test_say_hello_greets_by_name(channel: grpc.Channel) -> None:
    assert say_hello(channel, " Ada ") == "Hello, Ada!"


@pytest.mark.parametrize("name", ["", "   ", "x" * (greeter.MAX_NAME_LENGTH + 1)])
def test_say_hello_rejects_bad_names(channel: grpc.Channel, name: str) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        say_hello(channel, name)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    call = channel.unary_unary(f"/{greeter.SERVICE_NAME}/Nope")
    with pytest.raises(grpc.RpcError) as excinfo:
        call(b"", timeout=5)
    assert excinfo.value.code() == grpc.StatusCode.UNIMPLEMENTED

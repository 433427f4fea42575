"""The service's own API: ``greeter.v1.Greeter`` (see proto/greeter/v1/greeter.proto).

The messages are protobuf well-known types, so the service needs no generated code; when the
API grows its own messages, generate stubs from the .proto with grpcio-tools and register
them in the same place.
"""

from __future__ import annotations

import grpc
from google.protobuf import wrappers_pb2

SERVICE_NAME = "greeter.v1.Greeter"
MAX_NAME_LENGTH = 200


def say_hello(
    request: wrappers_pb2.StringValue, context: grpc.ServicerContext
) -> wrappers_pb2.StringValue:
    """Greet ``request.value``; an empty or overlong name is ``INVALID_ARGUMENT``."""
    name = request.value.strip()
    if not name:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"name must be at most {MAX_NAME_LENGTH} characters",
        )
    return wrappers_pb2.StringValue(value=f"Hello, {name}!")


def handler() -> grpc.GenericRpcHandler:
    """The method table the server registers for ``greeter.v1.Greeter``."""
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "SayHello": grpc.unary_unary_rpc_method_handler(
                say_hello,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            ),
        },
    )

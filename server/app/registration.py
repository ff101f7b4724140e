"""Puts the inference service on a grpc.aio server; ModelInfer answers with bytes it serialized itself."""

from __future__ import annotations

from typing import Any

import grpc

from server.app.servicer import InferenceServicer
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.gen import grpc_service_pb2_grpc as service_grpc


class _Collector:
    """Takes the place of the server while the generated code lists the service's method handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, generic_handlers: Any) -> None:
        pass  # the same handlers arrive as registered ones too

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.service, self.handlers = service, dict(handlers)


def add_inference_service(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    """The generated registration, except that ModelInfer's response goes out as returned: the servicer
    encodes it straight to wire bytes (server.protocol.wire) rather than building a message for gRPC to
    serialize."""
    collector = _Collector()
    service_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, collector)
    handlers = collector.handlers
    if not collector.service or "ModelInfer" not in handlers:
        raise RuntimeError("the generated GRPCInferenceService registration changed; regenerate the stubs")
    handlers["ModelInfer"] = grpc.unary_unary_rpc_method_handler(
        servicer.ModelInfer, request_deserializer=pb.ModelInferRequest.FromString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(collector.service, handlers),))
    server.add_registered_method_handlers(collector.service, handlers)

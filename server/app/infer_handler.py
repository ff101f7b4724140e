"""ModelInfer: the unary hot path. Acquire, decode + validate, run the backend, encode; nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from server.app import request_accounting
from server.app.telemetry_port import RequestObserver
from server.errors import BackendError, Unsupported
from server.protocol.convert import request_from_pb
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.wire import infer_response_bytes
from server.repository.handle import ModelHandle
from server.repository.manager import ModelManager
from server.types import InferRequest, InferResponse
from server.validation import validate_request

TRACE_HEADERS = ("traceparent", "tracestate")


def trace_context(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """W3C trace headers from the call's metadata (only read when a telemetry observer is installed)."""
    return {
        k: v for k, v in (context.invocation_metadata() or ()) if k in TRACE_HEADERS and isinstance(v, str)
    }


def decoupled_refusal(model: str) -> Unsupported:
    return Unsupported(
        "ModelInfer RPC doesn't support models with decoupled transaction policy "
        f"(model '{model}'); use ModelStreamInfer"
    )


def prepare(
    handle: ModelHandle,
    message: Any,
    context: grpc.aio.ServicerContext,
    observer: RequestObserver | None,
) -> InferRequest:
    """Decodes and validates one ModelInferRequest against the handle's config; the call's trace headers
    are read only when `observer` will use them (reading metadata costs microseconds per request)."""
    request = validate_request(request_from_pb(message), handle.config)
    if observer is not None and observer.wants_trace_context():
        request.trace_context = trace_context(context)
    return request


def stamp(response: InferResponse, handle: ModelHandle, request: InferRequest) -> InferResponse:
    """Responses name the version that served them (the request may have left the version empty)."""
    response.model_name = handle.name
    response.model_version = str(handle.version)
    response.id = request.id
    return response


class InferHandler:
    def __init__(self, manager: ModelManager, observer: RequestObserver | None) -> None:
        self._manager = manager
        self._observer = observer

    async def model_infer(
        self, message: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """The serialized ModelInferResponse (see server.app.registration)."""
        handle = self._manager.acquire(message.model_name, message.model_version)
        try:
            if handle.config.decoupled:
                raise decoupled_refusal(handle.name)
            request = prepare(handle, message, context, self._observer)
        except Exception:
            request_accounting.rejected(handle)
            handle.release()
            raise
        try:
            return await self._run(handle, request)
        finally:
            handle.release()

    async def _run(self, handle: ModelHandle, request: InferRequest) -> bytes:
        result: InferResponse | None = None
        error: BaseException | None = None
        try:
            answer = handle.backend.infer_unary(request)
            if isinstance(answer, InferResponse):
                result = answer
            else:
                async for response in answer:
                    if response.error is not None:
                        raise response.error
                    if result is None:  # a non-decoupled backend yields exactly one response
                        result = response
            if result is None:
                raise BackendError(f"model '{handle.name}' version {handle.version} produced no response")
            if result.error is not None:
                raise result.error
            return infer_response_bytes(stamp(result, handle, request))  # an unencodable output fails here
        except asyncio.CancelledError as e:  # the client cancelled the call
            request.cancel.cancel()
            error = e
            raise
        except BaseException as e:
            error = e
            raise
        finally:
            request_accounting.finish(handle, request, error, 0 if error else 1, self._observer)

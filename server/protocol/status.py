"""Domain error kinds -> gRPC status codes (PROTOCOL.md 1.8), and any exception -> (code, message)."""

from __future__ import annotations

import asyncio
import concurrent.futures

import grpc

from server.errors import HangarError, StatusKind

_CODES: dict[StatusKind, grpc.StatusCode] = {
    StatusKind.UNKNOWN: grpc.StatusCode.UNKNOWN,
    StatusKind.INTERNAL: grpc.StatusCode.INTERNAL,
    StatusKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    StatusKind.INVALID_ARG: grpc.StatusCode.INVALID_ARGUMENT,
    StatusKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    StatusKind.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    StatusKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    StatusKind.CANCELLED: grpc.StatusCode.CANCELLED,
    StatusKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
assert set(_CODES) == set(StatusKind), "every StatusKind needs a gRPC code"


def grpc_code(kind: StatusKind) -> grpc.StatusCode:
    """The gRPC status code Triton answers with for an error of this kind."""
    return _CODES[kind]


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for `exc`.

    Hangar errors map by kind with their own message; a cancelled task or future is CANCELLED;
    anything else is a server bug or an unexpected failure, reported as INTERNAL with its text.
    """
    if isinstance(exc, HangarError):
        return _CODES[exc.kind], exc.message
    if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
        return grpc.StatusCode.CANCELLED, str(exc) or "request cancelled"
    text = str(exc)
    return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {text}" if text else type(exc).__name__

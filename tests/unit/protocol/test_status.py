"""Error kinds map to Triton's gRPC codes; any exception becomes a (code, message) pair."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from server import errors
from server.errors import StatusKind
from server.protocol.status import grpc_code, status_of


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (StatusKind.UNKNOWN, grpc.StatusCode.UNKNOWN),
        (StatusKind.INTERNAL, grpc.StatusCode.INTERNAL),
        (StatusKind.NOT_FOUND, grpc.StatusCode.NOT_FOUND),
        (StatusKind.INVALID_ARG, grpc.StatusCode.INVALID_ARGUMENT),
        (StatusKind.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
        (StatusKind.UNSUPPORTED, grpc.StatusCode.UNIMPLEMENTED),
        (StatusKind.ALREADY_EXISTS, grpc.StatusCode.ALREADY_EXISTS),
        (StatusKind.CANCELLED, grpc.StatusCode.CANCELLED),
        (StatusKind.RESOURCE_EXHAUSTED, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_every_kind_maps_like_triton(kind: StatusKind, code: grpc.StatusCode) -> None:
    assert grpc_code(kind) is code


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.InvalidInput("bad 'x'"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.ModelNotFound("no 'm'"), grpc.StatusCode.NOT_FOUND),
        (errors.ModelNotReady("m loading"), grpc.StatusCode.UNAVAILABLE),
        (errors.Unsupported("nope"), grpc.StatusCode.UNIMPLEMENTED),
        (errors.Unavailable("queue full"), grpc.StatusCode.UNAVAILABLE),
        (errors.ResourceExhausted("too long"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Cancelled("cancelled"), grpc.StatusCode.CANCELLED),
        (errors.ConfigError("bad config"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.LoadError("load failed"), grpc.StatusCode.INTERNAL),
        (errors.BackendError("model raised"), grpc.StatusCode.INTERNAL),
        (errors.HangarError("exists", kind=StatusKind.ALREADY_EXISTS), grpc.StatusCode.ALREADY_EXISTS),
    ],
)
def test_hangar_errors_keep_their_message(exc: errors.HangarError, code: grpc.StatusCode) -> None:
    assert status_of(exc) == (code, exc.message)


def test_other_exceptions_are_internal_with_their_text() -> None:
    assert status_of(ValueError("x must be > 0")) == (grpc.StatusCode.INTERNAL, "ValueError: x must be > 0")
    assert status_of(KeyError("k")) == (grpc.StatusCode.INTERNAL, "KeyError: 'k'")
    assert status_of(RuntimeError()) == (grpc.StatusCode.INTERNAL, "RuntimeError")


def test_cancelled_tasks_are_cancelled() -> None:
    assert status_of(asyncio.CancelledError())[0] is grpc.StatusCode.CANCELLED

"""The one place domain exceptions become gRPC statuses: handlers raise, `status_boundary` aborts the call.

A decorator on each servicer method rather than a server interceptor: grpc.aio runs interceptors through
extra coroutines on every call, which cost a third of the unary throughput in bench/grpc_overhead.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from server.errors import HangarError
from server.protocol.status import status_of

log = logging.getLogger("hangar.rpc")
R = TypeVar("R")


async def abort_with(context: grpc.aio.ServicerContext, error: BaseException) -> None:
    """Ends the call with the status for `error`; unexpected exceptions are logged with their traceback."""
    if not isinstance(error, HangarError):
        log.error("unexpected %s in an RPC", type(error).__name__, exc_info=error)
    code, message = status_of(error)
    await context.abort(code, message)


def status_boundary(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Wraps an async servicer method `(self, request, context)` so any exception aborts with its status."""

    @functools.wraps(method)
    async def rpc(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await abort_with(context, e)
            raise AssertionError("context.abort returned") from e  # abort always raises

    return rpc

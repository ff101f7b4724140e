"""ResponseChannel: carries one request's responses from worker threads back to the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable

from server.errors import BackendError, HangarError
from server.types import CancelToken, InferRequest, InferResponse

log = logging.getLogger(__name__)


class ResponseChannel:
    """An async iterator over one request's responses; it ends after the response marked `final`.

    The producer side (`push`, `deliver_all`) may run on any thread; the consumer side runs on `loop`.
    If the consumer is cancelled while waiting, the request's cancel token is set so the model can stop.
    """

    __slots__ = ("_answered", "_cancel", "_finished", "_items", "_waiter", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, cancel: CancelToken | None = None) -> None:
        self.loop = loop
        self._cancel = cancel
        self._items: deque[InferResponse] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._finished = False
        self._answered = False  # the final response came: anything later is dropped

    def put_nowait(self, response: InferResponse) -> None:
        """Add a response; event-loop thread only. Responses after the final one, or after the consumer
        stopped listening, are dropped; a late error is logged, since no client will ever see it."""
        if self._answered or self._finished:
            if self._answered and response.error is not None:
                log_late_error(response.model_name, response.model_version, response.id, response.error)
            return
        self._answered = response.final
        self._items.append(response)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, response: InferResponse) -> None:
        """Add a response from any thread (one loop wake-up per call; see `deliver_all` for batches)."""
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            self.loop.call_soon_threadsafe(self.put_nowait, response)

    async def aclose(self) -> None:
        """Stop listening; an unfinished request is cancelled, as closing an async generator would."""
        if not self._finished:
            self._finished = True
            if self._cancel is not None:
                self._cancel.cancel()

    def __aiter__(self) -> ResponseChannel:
        return self

    async def __anext__(self) -> InferResponse:
        if self._finished:
            raise StopAsyncIteration
        if not self._items:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                self._finished = True
                if self._cancel is not None:
                    self._cancel.cancel()
                raise
            finally:
                self._waiter = None
        response = self._items.popleft()
        if response.final:
            self._finished = True
        return response


def log_late_error(model: str, version: str, request_id: str, error: BaseException) -> None:
    """An error for a request that already has its final response: no client will see it, so log it."""
    log.warning(
        "model '%s' version %s: request '%s' was already answered; dropping its late error: %s",
        model,
        version,
        request_id,
        error,
    )


def _put_all(pairs: list[tuple[ResponseChannel, InferResponse]]) -> None:
    for channel, response in pairs:
        channel.put_nowait(response)


def deliver_all(pairs: Iterable[tuple[ResponseChannel, InferResponse]]) -> None:
    """Deliver many responses with one wake-up per event loop (normally exactly one)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[ResponseChannel, InferResponse]]] = {}
    for pair in pairs:
        by_loop.setdefault(pair[0].loop, []).append(pair)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            loop.call_soon_threadsafe(_put_all, group)


def error_response(request: InferRequest, error: BaseException) -> InferResponse:
    """The final response that fails `request` alone; non-domain exceptions become BackendError."""
    return InferResponse(
        request.model_name, request.model_version, request.id, final=True, error=as_domain_error(error)
    )


def as_domain_error(error: BaseException) -> HangarError:
    if isinstance(error, HangarError):
        return error
    text = str(error)
    return BackendError(f"{type(error).__name__}: {text}" if text else type(error).__name__)

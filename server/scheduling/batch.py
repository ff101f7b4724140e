"""Batch: one execution of a model instance, and the execute function's contract."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.scheduling.response_channel import ResponseChannel
from server.types import InferRequest, InferResponse


@dataclass(eq=False)
class Batch:
    """One execution: requests in queue order, their response channels and batch sizes.

    The execute function may stamp `input_end_ns` and `output_start_ns` (monotonic ns) for the statistics.
    A backend that answers through a request's channel gets it with `channel(i)`.
    """

    instance: int
    requests: list[InferRequest]
    channels: list[ResponseChannel | None]
    """None: not made yet (the unary fast path makes a request's channel only if the backend asks)."""
    sizes: list[int]
    input_end_ns: int = 0
    output_start_ns: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    """The event loop that consumes channels made on first use (set where `channels` holds None)."""

    def channel(self, index: int) -> ResponseChannel:
        """Request `index`'s response channel, made on first use; any thread (callers serialize)."""
        channel = self.channels[index]
        if channel is None:
            assert self.loop is not None, "a batch without channels must name its loop"
            channel = self.channels[index] = ResponseChannel(self.loop, self.requests[index].cancel)
        return channel

    @property
    def size(self) -> int:
        return sum(self.sizes)


ExecuteFn = Callable[[Batch], Sequence[InferResponse | None] | None]
"""Runs a batch on the instance's thread. Returns one final response per request, in order (None where
the backend delivered through `batch.channel(i)` itself), or None when it delivers everything itself. Raising
fails every request of the batch."""

"""Batch: one execution of a model instance, and the execute function's contract."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.scheduling.response_channel import ResponseChannel
from server.types import InferRequest, InferResponse


@dataclass(eq=False)
class Batch:
    """One execution: requests in queue order, their response channels and batch sizes.

    The execute function may stamp `input_end_ns` and `output_start_ns` (monotonic ns) for the statistics.
    """

    instance: int
    requests: list[InferRequest]
    channels: list[ResponseChannel]
    sizes: list[int]
    input_end_ns: int = 0
    output_start_ns: int = 0

    @property
    def size(self) -> int:
        return sum(self.sizes)


ExecuteFn = Callable[[Batch], Sequence[InferResponse | None] | None]
"""Runs a batch on the instance's thread. Returns one final response per request, in order (None where
the backend delivered through the channel itself), or None when it delivers everything itself. Raising
fails every request of the batch."""

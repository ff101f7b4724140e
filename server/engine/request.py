"""One generation request's token state inside the engine: prompt, outputs, progress, status."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from server.engine.outputs import FinishReason, RequestOutput
from server.engine.sampling_params import SamplingParams


class RequestStatus(enum.IntEnum):
    """Ordered so that `status >= FINISHED_STOPPED` is "finished"."""

    WAITING = 0
    RUNNING = 1
    PREEMPTED = 2
    """Back in the waiting queue after its blocks were taken; resumes by recomputing its tokens."""
    FINISHED_STOPPED = 3
    FINISHED_LENGTH = 4
    FINISHED_ABORTED = 5
    FINISHED_ERROR = 6

    @property
    def finished(self) -> bool:
        return self >= RequestStatus.FINISHED_STOPPED

    @property
    def finish_reason(self) -> FinishReason | None:
        return _FINISH_REASONS.get(self)


_FINISH_REASONS = {
    RequestStatus.FINISHED_STOPPED: FinishReason.STOP,
    RequestStatus.FINISHED_LENGTH: FinishReason.LENGTH,
    RequestStatus.FINISHED_ABORTED: FinishReason.ABORT,
    RequestStatus.FINISHED_ERROR: FinishReason.ERROR,
}


class Request:
    """Token state of one sequence; the scheduler mutates it, the block manager reads it."""

    __slots__ = (
        "block_hashes",
        "error",
        "max_total_tokens",
        "num_cached_tokens",
        "num_computed_tokens",
        "num_prompt_tokens",
        "output_token_ids",
        "request_id",
        "sampling",
        "status",
        "stop_token_ids",
        "token_ids",
    )

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        sampling: SamplingParams,
        eos_token_ids: Sequence[int] = (),
    ) -> None:
        self.request_id = request_id
        self.sampling = sampling
        self.token_ids: list[int] = list(prompt_token_ids)
        """The prompt followed by every generated token."""
        self.num_prompt_tokens = len(self.token_ids)
        self.output_token_ids: list[int] = []
        self.num_computed_tokens = 0
        """Leading tokens whose KV is in this request's blocks (prefix hits included)."""
        self.num_cached_tokens = 0
        """Prefix-cache hit tokens at first admission (reported to the client)."""
        self.block_hashes: list[bytes] = []
        """Chained hashes of the full blocks of token_ids, filled lazily by the block manager."""
        self.status = RequestStatus.WAITING
        self.error: str | None = None
        self.max_total_tokens = self.num_prompt_tokens + sampling.max_tokens
        end_ids = (sampling.end_id,) if sampling.end_id is not None else tuple(eos_token_ids)
        self.stop_token_ids = frozenset(sampling.stop_token_ids) | (
            frozenset() if sampling.ignore_eos else frozenset(end_ids)
        )

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    def append_output(self, token_id: int) -> RequestStatus | None:
        """Record a sampled token; returns the finished status it causes, if any."""
        self.token_ids.append(token_id)
        self.output_token_ids.append(token_id)
        num_out = len(self.output_token_ids)
        if token_id in self.stop_token_ids and num_out >= self.sampling.min_tokens:
            return RequestStatus.FINISHED_STOPPED
        if num_out >= self.sampling.max_tokens:
            return RequestStatus.FINISHED_LENGTH
        return None

    def output(
        self, new_token_ids: tuple[int, ...] = (), new_logprobs: tuple[float, ...] | None = None
    ) -> RequestOutput:
        """This step's delta for the client; final when the request has finished."""
        status = self.status
        return RequestOutput(
            self.request_id,
            new_token_ids,
            new_logprobs,
            status >= RequestStatus.FINISHED_STOPPED,
            _FINISH_REASONS.get(status),
            self.error,
            self.num_prompt_tokens,
            self.num_cached_tokens,
            len(self.output_token_ids),
        )

    def __repr__(self) -> str:
        return (
            f"Request({self.request_id!r}, {self.status.name}, prompt={self.num_prompt_tokens}, "
            f"out={len(self.output_token_ids)}, computed={self.num_computed_tokens})"
        )

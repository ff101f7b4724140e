"""What the engine hands back per request per step: new tokens and, at the end, why it finished."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FinishReason(enum.Enum):
    """Why a request finished. STOP covers eos / end_id, stop token ids and stop strings."""

    LENGTH = "length"
    STOP = "stop"
    ABORT = "abort"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RequestOutput:
    """One request's delta from one engine step; the last one has `finished` set."""

    request_id: str
    new_token_ids: tuple[int, ...]
    """Tokens sampled this step (empty for a final ABORT/ERROR/finish() output); a stop or end token is
    included, the detokenizer decides whether to show it."""
    new_logprobs: tuple[float, ...] | None
    """Parallel to new_token_ids when the request asked for logprobs, else None."""
    finished: bool
    finish_reason: FinishReason | None
    error: str | None
    """Set with FinishReason.ERROR (a sampling failure or an engine crash) and on shutdown ABORTs."""
    num_prompt_tokens: int
    num_cached_tokens: int
    """Prompt tokens served from the prefix cache at first admission (their prefill was skipped)."""
    num_output_tokens: int
    """Tokens generated so far, these included."""

"""The backend-neutral step output: what an engine produced for one request since its last delta."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FinishReason(enum.Enum):
    """Why a request ended; the value is what the `finish_reason` output carries."""

    STOP = "stop"
    """End id, a stop token, a stop sequence or a stop string."""
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class TokenDelta:
    """New tokens of one request (only the new ones, never the prompt)."""

    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None
    """One per new token when the request asked for log-probs."""
    finished: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None
    """Set when the engine failed this request; the request ends with a BackendError."""

    @classmethod
    def failure(cls, message: str) -> TokenDelta:
        return cls(finished=True, finish_reason=FinishReason.ERROR, error=message)

    @classmethod
    def cancelled(cls) -> TokenDelta:
        return cls(finished=True, finish_reason=FinishReason.CANCELLED)

"""The seam between the scheduler and a device: what one engine step asks a model runner to compute."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from server.engine.sampling_params import SamplingParams


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One sequence's share of a step: compute KV for `token_ids` from position start_pos, maybe sample."""

    request_id: str
    token_ids: Sequence[int]
    """The tokens whose KV this step computes (a prompt chunk, or the one last sampled token)."""
    start_pos: int
    """How many tokens of this sequence already have KV in the cache (prefix hits included)."""
    block_table: Sequence[int]
    """Physical KV block ids covering positions 0 .. start_pos + len(token_ids) - 1."""
    sample: bool
    """False for a prompt chunk that does not reach the end of the prompt: no token is sampled."""
    sampling: SamplingParams
    prompt_len: int
    output_token_ids: Sequence[int]
    """Tokens generated so far (read-only; penalties and min_tokens use it)."""
    prompt_token_ids: Sequence[int] = ()
    """The prompt, read-only: only its first `prompt_len` entries are read, so the request's whole token
    list (prompt + outputs) may be passed as is. The repetition penalty and bad words look at the prompt
    too (as in HF and vLLM); prefix-cache hits skip prompt tokens in `token_ids`, so the runner needs it."""


@dataclass(frozen=True, slots=True)
class StepOutput:
    """What the runner sampled for one BatchItem with `sample=True`."""

    token_id: int
    logprob: float | None = None
    error: str | None = None
    """Set when sampling failed for this request only (e.g. NaN logits); the engine fails that request."""


class ModelRunner(ABC):
    """Owns the device: weights, the KV pool, forward and sampling. Called only from the engine thread."""

    block_size: int
    num_blocks: int
    max_model_len: int
    vocab_size: int
    eos_token_ids: tuple[int, ...]

    @abstractmethod
    def execute(self, items: Sequence[BatchItem]) -> list[StepOutput | None]:
        """Run one step: one entry per item, None where `sample` is False.

        Raises:
            Exception: a device-level failure; the engine fails every in-flight request.
        """

    def release(self, request_id: str) -> None:  # noqa: B027 - runners without per-request state skip it
        """Forget per-request state (e.g. its seeded generator); called when a request finishes or aborts."""

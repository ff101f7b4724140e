"""Per-request generation settings, validated once at submit time."""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import InvalidInput


@dataclass(frozen=True)
class SamplingParams:
    """How one request is decoded. temperature == 0 (or top_k == 1) means greedy."""

    max_tokens: int = 16
    min_tokens: int = 0
    temperature: float = 1.0
    top_k: int = 0
    """0 = disabled."""
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    end_id: int | None = None
    """Stops generation when sampled (after min_tokens); None: the model's eos ids."""
    ignore_eos: bool = False
    stop_token_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()
    """Matched on detokenized text, outside the engine thread."""
    bad_words: tuple[tuple[int, ...], ...] = ()
    """Token sequences that must never be completed."""
    logprobs: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    def validate(self, max_model_tokens: int) -> None:
        """Raises InvalidInput naming the offending value."""
        if self.max_tokens <= 0:
            raise InvalidInput(f"max_tokens must be > 0, got {self.max_tokens}")
        if self.max_tokens > max_model_tokens:
            raise InvalidInput(f"max_tokens {self.max_tokens} exceeds the model's limit {max_model_tokens}")
        if self.min_tokens < 0 or self.min_tokens > self.max_tokens:
            raise InvalidInput(
                f"min_tokens must be in [0, max_tokens={self.max_tokens}], got {self.min_tokens}"
            )
        if self.temperature < 0:
            raise InvalidInput(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise InvalidInput(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInput(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise InvalidInput(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise InvalidInput(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

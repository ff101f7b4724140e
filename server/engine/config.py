"""Engine limits: batch size, token budget, KV block geometry, prefix caching."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from server.errors import ConfigError

if TYPE_CHECKING:
    from server.engine.runner import ModelRunner


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """How much the scheduler may put into one step and how the KV pool is laid out."""

    num_blocks: int
    """KV blocks in the pool (the runner sized it from memory)."""
    max_model_len: int
    """Longest sequence (prompt + output) a request may reach."""
    max_num_seqs: int = 64
    """Most requests in one step (decodes plus prefill chunks)."""
    max_num_batched_tokens: int = 2048
    """Token budget of one step; longer prompts are prefilled in chunks."""
    block_size: int = 16
    """Tokens per KV block; must match the runner's."""
    enable_prefix_caching: bool = True
    """Reuse full KV blocks whose token prefix was computed before."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "enable_prefix_caching":
                if not isinstance(value, bool):
                    raise ConfigError(f"enable_prefix_caching must be a bool, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{f.name} must be an integer >= 1, got {value!r}")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ConfigError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= "
                f"max_num_seqs ({self.max_num_seqs}): every running request needs a token per step"
            )

    @classmethod
    def from_runner(cls, runner: ModelRunner, **overrides: Any) -> EngineConfig:
        """The runner's KV geometry and length limit, with the scheduling limits from `overrides`."""
        base: dict[str, Any] = {
            "num_blocks": runner.num_blocks,
            "block_size": runner.block_size,
            "max_model_len": runner.max_model_len,
        }
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown engine config keys {unknown}")
        return cls(**{**base, **overrides})

    @property
    def kv_capacity_tokens(self) -> int:
        return self.num_blocks * self.block_size

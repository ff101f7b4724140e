"""The limits a TensorRT-LLM engine is built with (fixed at build time), checked against each other and
against the model before anything runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from builders.errors import BuildInputError

ENGINE_DTYPES = ("auto", "float16", "bfloat16", "float32")
_FLAGS = {
    "max_batch_size": "--max-batch-size",
    "max_input_len": "--max-input-len",
    "max_seq_len": "--max-seq-len",
    "max_num_tokens": "--max-num-tokens",
    "tokens_per_block": "--tokens-per-block",
    "max_beam_width": "--max-beam-width",
    "tp_size": "--tp-size",
    "pp_size": "--pp-size",
}


@dataclass(frozen=True)
class EngineLimits:
    """trtllm-build's sizes; the defaults suit one GPU and moderate prompts."""

    max_batch_size: int = 64
    max_input_len: int = 1024
    max_seq_len: int = 2048
    """Prompt plus output tokens of one request."""
    max_num_tokens: int = 8192
    """Tokens one engine step may process (prefill chunks plus one per decoding request)."""
    tokens_per_block: int = 32
    """Paged KV cache block size."""
    max_beam_width: int = 1
    tp_size: int = 1
    pp_size: int = 1
    dtype: str = "auto"
    enable_chunked_context: bool = False

    @property
    def world_size(self) -> int:
        return self.tp_size * self.pp_size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self, model_config: dict[str, Any]) -> None:
        """Raises BuildInputError naming the flags whose values contradict each other or the model."""
        for name, flag in _FLAGS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BuildInputError(f"{flag} must be a positive integer, got {value!r}")
        if self.dtype not in ENGINE_DTYPES:
            raise BuildInputError(f"--dtype must be one of {', '.join(ENGINE_DTYPES)}, got {self.dtype!r}")
        if self.max_input_len >= self.max_seq_len:
            raise BuildInputError(
                f"--max-input-len ({self.max_input_len}) must be less than --max-seq-len "
                f"({self.max_seq_len}): a request needs room for at least one output token"
            )
        if self.max_num_tokens < self.max_input_len and not self.enable_chunked_context:
            raise BuildInputError(
                f"--max-num-tokens ({self.max_num_tokens}) is below --max-input-len ({self.max_input_len}): "
                "a full-length prompt could never be scheduled; raise it or pass --enable-chunked-context"
            )
        if self.tokens_per_block & (self.tokens_per_block - 1):
            raise BuildInputError(f"--tokens-per-block must be a power of 2, got {self.tokens_per_block}")
        self._check_model(model_config)

    def _check_model(self, config: dict[str, Any]) -> None:
        max_pos = config.get("max_position_embeddings")
        scaled = bool(
            config.get("rope_scaling")
            or config.get("rope_parameters", {}).get("rope_type", "default") != "default"
        )
        if isinstance(max_pos, int) and self.max_seq_len > max_pos and not scaled:
            raise BuildInputError(
                f"--max-seq-len ({self.max_seq_len}) exceeds the model's max_position_embeddings ({max_pos})"
            )
        heads = config.get("num_attention_heads")
        if isinstance(heads, int) and heads % self.tp_size:
            raise BuildInputError(f"--tp-size {self.tp_size} does not divide num_attention_heads ({heads})")
        layers = config.get("num_hidden_layers")
        if isinstance(layers, int) and self.pp_size > layers:
            raise BuildInputError(f"--pp-size {self.pp_size} exceeds num_hidden_layers ({layers})")

"""Config auto-complete for LLM models: a config.pbtxt with only name, backend and decoupled is enough."""

from __future__ import annotations

from server.backends.llm.contracts import ALL_INPUTS, OUTPUTS
from server.errors import ConfigError
from server.repository.model_config import ModelConfig, TensorConfig
from server.types import DataType

DEFAULT_MAX_BATCH_SIZE = 64
"""Clients send the leading batch dim 1, as TensorRT-LLM clients do; each request still carries one prompt."""

_KINDS: dict[DataType, str] = {
    DataType.BYTES: "string",
    DataType.BOOL: "bool",
    DataType.FP16: "float",
    DataType.BF16: "float",
    DataType.FP32: "float",
    DataType.FP64: "float",
}


def _kind(dtype: DataType) -> str:
    return _KINDS.get(dtype, "integer")


def _merge(
    user: tuple[TensorConfig, ...], ours: tuple[TensorConfig, ...], what: str
) -> tuple[TensorConfig, ...]:
    """User tensors first and kept as written; ours appended where the name is free."""
    by_name = {t.name: t for t in ours}
    for t in user:
        theirs = by_name.get(t.name)
        if theirs is not None and _kind(t.data_type) != _kind(theirs.data_type):
            raise ConfigError(
                f"{what} '{t.name}' is declared {t.data_type.config_name}, but the LLM contract reads it as "
                f"{_kind(theirs.data_type)} ({theirs.data_type.config_name}); fix or remove the declaration"
            )
    taken = {t.name for t in user}
    return user + tuple(t for t in ours if t.name not in taken)


def complete_llm_config(config: ModelConfig) -> ModelConfig:
    """Fill in both contracts' inputs and outputs and a batch size.

    `max_batch_size` 0 (unset) becomes 64: every contract dim then follows an implicit batch dim.

    Raises:
        ConfigError: a declared contract tensor has a type the contract cannot read.
    """
    return config.with_changes(
        max_batch_size=config.max_batch_size or DEFAULT_MAX_BATCH_SIZE,
        inputs=_merge(config.inputs, ALL_INPUTS, "input"),
        outputs=_merge(config.outputs, OUTPUTS, "output"),
    )

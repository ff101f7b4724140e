"""The model config in the JSON form Triton gives Python models: int64 fields as numbers, not strings."""

from __future__ import annotations

from typing import Any

from server.repository.model_config import ModelConfig

# protobuf's JSON writes int64 as strings; Triton turns these back into numbers before models see them.
_INT64_KEYS = frozenset({
    "dims", "shape", "max_queue_delay_microseconds", "default_timeout_microseconds", "versions",
    "preferred_batch_size", "max_queue_size", "num_versions", "count", "gpus", "priority_levels",
    "default_priority_level", "max_sequence_idle_microseconds",
})  # fmt: skip


def config_json(config: ModelConfig) -> dict[str, Any]:
    result: dict[str, Any] = _numbers(config.to_dict(), "")
    return result


def _numbers(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _numbers(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers(v, key) for v in value]
    if key in _INT64_KEYS and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value

"""pb_utils.ModelConfig: what a model's `auto_complete_config(auto_complete_model_config)` edits."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from server.backends.python.pb_response import TritonModelException

_INPUT_KEYS = frozenset({
    "name", "data_type", "dims", "format", "reshape", "is_shape_tensor", "allow_ragged_batch", "optional",
    "is_non_linear_format_io",
})  # fmt: skip
_OUTPUT_KEYS = frozenset({
    "name", "data_type", "dims", "reshape", "label_filename", "is_shape_tensor", "is_non_linear_format_io",
})  # fmt: skip


class ModelConfig:
    """A mutable copy of the model config (Triton's JSON form) with Triton's auto-complete setters."""

    def __init__(self, model_config: Mapping[str, Any] | str) -> None:
        data = json.loads(model_config) if isinstance(model_config, str) else model_config
        self._config: dict[str, Any] = copy.deepcopy(dict(data))

    def as_dict(self) -> dict[str, Any]:
        return self._config

    def set_max_batch_size(self, max_batch_size: int) -> None:
        current = int(self._config.get("max_batch_size", 0) or 0)
        if current not in (0, max_batch_size):
            raise TritonModelException(
                f"auto_complete_config sets max_batch_size {max_batch_size}, but the model configuration "
                f"already says {current}"
            )
        self._config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self) -> None:
        if "sequence_batching" in self._config:
            raise TritonModelException("cannot set dynamic batching: the model uses sequence_batching")
        self._config.setdefault("dynamic_batching", {})

    def set_model_transaction_policy(self, transaction_policy_dict: Mapping[str, Any]) -> None:
        unknown = set(transaction_policy_dict) - {"decoupled"}
        if unknown:
            raise TritonModelException(f"unknown model_transaction_policy keys: {sorted(unknown)}")
        self._config["model_transaction_policy"] = dict(transaction_policy_dict)

    def add_input(self, input: Mapping[str, Any]) -> None:
        self._add("input", input, _INPUT_KEYS)

    def add_output(self, output: Mapping[str, Any]) -> None:
        self._add("output", output, _OUTPUT_KEYS)

    def _add(self, section: str, tensor: Mapping[str, Any], keys: frozenset[str]) -> None:
        unknown = set(tensor) - keys
        if unknown:
            raise TritonModelException(f"unknown {section} keys {sorted(unknown)} (known: {sorted(keys)})")
        name = tensor.get("name")
        if not name:
            raise TritonModelException(f"every {section} needs a 'name'")
        tensors: list[dict[str, Any]] = self._config.setdefault(section, [])
        existing = next((t for t in tensors if t.get("name") == name), None)
        if existing is None:
            tensors.append(dict(tensor))
            return
        for key, value in tensor.items():
            have = existing.get(key)
            if have in (None, [], "") or _same(have, value):
                existing[key] = value
            else:
                raise TritonModelException(
                    f"{section} '{name}': auto_complete_config sets {key}={value!r}, but the model "
                    f"configuration says {have!r}"
                )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return [str(x) for x in a] == [str(x) for x in b]
    return str(a) == str(b)

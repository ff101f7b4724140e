"""Config auto-complete for ONNX models: inputs and outputs read from the graph when the config has none."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from server.backends.onnxruntime.session import datatype_of
from server.backends.version_files import latest_version_file
from server.errors import ConfigError, HangarError
from server.repository.model_config import ModelConfig, TensorConfig

DEFAULT_MODEL_FILENAME = "model.onnx"


def auto_complete(config: ModelConfig, model_dir: Path) -> ModelConfig:
    """Fill empty `input` / `output` lists from the model file of the highest version.

    With max_batch_size > 0 the graph's leading (batch) dimension is left out of `dims`.

    Raises:
        ConfigError: the model file cannot be read, or its leading dims cannot be a batch dimension.
    """
    if config.inputs and config.outputs:
        return config
    path = latest_version_file(model_dir, config.default_model_filename or DEFAULT_MODEL_FILENAME)
    if path is None:
        return config  # load() reports the missing file against its version
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ConfigError(f"cannot read {path} to complete the config: {type(e).__name__}: {e}") from e
    try:
        inputs = config.inputs or _tensors(session.get_inputs(), config.max_batch_size, "input")
        outputs = config.outputs or _tensors(session.get_outputs(), config.max_batch_size, "output")
    except HangarError as e:
        raise ConfigError(f"cannot complete the config of model '{config.name}' from {path}: {e}") from e
    return config.with_changes(inputs=inputs, outputs=outputs)


def _tensors(nodes: Sequence[Any], max_batch_size: int, what: str) -> tuple[TensorConfig, ...]:
    out = []
    for node in nodes:
        dims = tuple(d if isinstance(d, int) and d > 0 else -1 for d in node.shape)
        if max_batch_size > 0:
            if not dims or dims[0] != -1:
                raise ConfigError(
                    f"{what} '{node.name}' has shape {list(node.shape)}: with max_batch_size > 0 its first "
                    "dimension must be variable (the batch)"
                )
            dims = dims[1:]
        out.append(TensorConfig(node.name, datatype_of(node.type, f"{what} '{node.name}'"), dims))
    return tuple(out)

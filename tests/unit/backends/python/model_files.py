"""Writes small Python-backend models into a temporary model directory for the tests in this package."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from server.repository.model_config import ModelConfig

ADD_ONE_IO: dict[str, Any] = {
    "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": ["-1"]}],
    "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": ["-1"]}],
}


def write_model(
    root: Path, name: str, code: str, config: dict[str, Any] | None = None
) -> tuple[Path, ModelConfig]:
    """`<root>/<name>/1/model.py` holding `code` (dedented); returns the model dir and its config."""
    model_dir = root / name
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "model.py").write_text(textwrap.dedent(code))
    data = {"name": name, "backend": "python", **ADD_ONE_IO, **(config or {})}
    return model_dir, ModelConfig.from_dict(data)

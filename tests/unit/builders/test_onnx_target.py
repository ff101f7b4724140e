"""`hangar build onnx-example`: builders/onnx_example.py's model, dropped like every other build."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders.manifest import read_manifest
from builders.onnx_example import CONFIG_PBTXT
from server.app.main import main


def test_the_example_is_dropped_with_its_config_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "onnx-example", "--repository", str(tmp_path)]) == 0
    assert main(["build", "onnx-example", "--repository", str(tmp_path)]) == 0
    model_dir = tmp_path / "add_sub_onnx"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "config.pbtxt"]
    assert (model_dir / "config.pbtxt").read_text() == CONFIG_PBTXT
    assert sorted(read_manifest(model_dir / "2")["files"]) == ["model.onnx"]
    assert "run the ONNX checker and one onnxruntime inference" in capsys.readouterr().out

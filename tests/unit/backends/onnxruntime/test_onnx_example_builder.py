"""builders/onnx_example: the add_sub ONNX model, its atomic writes and its command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from builders.onnx_example import CONFIG_PBTXT, build_add_sub_onnx, main
from tests.support.tensor_models import MODEL_REPO


def test_built_model_adds_and_subtracts(tmp_path: Path) -> None:
    path = tmp_path / "m" / "model.onnx"
    build_add_sub_onnx(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("INPUT0", "tensor(float)"),
        ("INPUT1", "tensor(float)"),
    ]
    a = np.arange(32, dtype=np.float32).reshape(2, 16)
    b = np.ones((2, 16), np.float32)
    out0, out1 = session.run(["OUTPUT0", "OUTPUT1"], {"INPUT0": a, "INPUT1": b})
    np.testing.assert_array_equal(out0, a + b)
    np.testing.assert_array_equal(out1, a - b)
    build_add_sub_onnx(path)  # rebuilding replaces the file and leaves no temporaries behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]


def test_cli_writes_the_version_and_config_into_a_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repository", str(tmp_path)]) == 0
    model_dir = tmp_path / "add_sub_onnx"
    assert (model_dir / "1" / "model.onnx").is_file()
    assert (model_dir / "config.pbtxt").read_text() == CONFIG_PBTXT
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "config.pbtxt"]  # no staging dir left
    assert "wrote" in capsys.readouterr().out
    assert main(["--repository", str(tmp_path), "--version", "2"]) == 0
    assert (model_dir / "2" / "model.onnx").is_file()


def test_cli_reports_a_missing_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repository", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "nope") in err and "not a directory" in err
    with pytest.raises(SystemExit):
        main(["--repository", str(tmp_path), "--version", "0"])


def test_builder_config_matches_the_example_repository() -> None:
    assert (MODEL_REPO / "add_sub_onnx" / "config.pbtxt").read_text() == CONFIG_PBTXT

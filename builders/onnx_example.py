"""Builds the add_sub example as an ONNX graph (OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1)."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import TensorProto, helper

MODEL_NAME = "add_sub_onnx"
WIDTH = 16
OPSET = 13  # old enough for every onnxruntime Hangar supports
IR_VERSION = 8

CONFIG_PBTXT = """\
# The add_sub model as ONNX; `python -m builders.onnx_example --repository model_repo` writes 1/model.onnx.
name: "add_sub_onnx"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "INPUT0", data_type: TYPE_FP32, dims: [ 16 ] },
  { name: "INPUT1", data_type: TYPE_FP32, dims: [ 16 ] }
]
output [
  { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 16 ] },
  { name: "OUTPUT1", data_type: TYPE_FP32, dims: [ 16 ] }
]
dynamic_batching { }
instance_group [ { count: 1, kind: KIND_CPU } ]
"""


def add_sub_model() -> onnx.ModelProto:
    """FP32 INPUT0, INPUT1 of shape [batch, 16] -> OUTPUT0 (sum), OUTPUT1 (difference)."""
    shape: list[str | int] = ["batch", WIDTH]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"], name="add"),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"], name="sub"),
        ],
        "add_sub",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("INPUT0", "INPUT1")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("OUTPUT0", "OUTPUT1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hangar")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def build_add_sub_onnx(path: Path) -> None:
    """Write the model to `path` atomically: a temporary file beside it, then a rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(add_sub_model().SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def install(repository: Path, version: int = 1) -> Path:
    """Put the model into `<repository>/add_sub_onnx/<version>/model.onnx` (and config.pbtxt if absent).

    A new version directory appears whole: it is built in a hidden staging directory and renamed,
    so a polling server never sees it half written. Returns the model file's path.
    """
    if not repository.is_dir():
        raise FileNotFoundError(f"model repository {repository} is not a directory")
    model_dir = repository / MODEL_NAME
    model_dir.mkdir(exist_ok=True)
    config = model_dir / "config.pbtxt"
    if not config.exists():
        config.write_text(CONFIG_PBTXT, encoding="utf-8")
    version_dir = model_dir / str(version)
    if version_dir.is_dir():
        build_add_sub_onnx(version_dir / "model.onnx")
        return version_dir / "model.onnx"
    staging = model_dir / f".staging-{uuid.uuid4().hex}"
    try:
        build_add_sub_onnx(staging / "model.onnx")
        os.rename(staging, version_dir)
    finally:
        if staging.exists():
            (staging / "model.onnx").unlink(missing_ok=True)
            staging.rmdir()
    return version_dir / "model.onnx"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builders.onnx_example", description=__doc__)
    parser.add_argument("--repository", required=True, type=Path, help="model repository directory")
    parser.add_argument("--version", type=int, default=1, help="version directory to write (default 1)")
    args = parser.parse_args(argv)
    if args.version < 1:
        parser.error(f"--version must be a positive integer, got {args.version}")
    try:
        path = install(args.repository, args.version)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`hangar build onnx-example`: the add_sub ONNX model of builders/onnx_example.py, dropped like every
other build (staging dir, validation, manifest, atomic rename)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builders.errors import BuildFailed
from builders.onnx_example import CONFIG_PBTXT, IR_VERSION, MODEL_NAME, OPSET, build_add_sub_onnx
from builders.owned_config import OwnedConfig
from builders.target import BuildContext, Step, Target

MODEL_FILE = "model.onnx"


class OnnxExampleTarget(Target):
    name = "onnx-example"

    def check(self) -> None:
        """Nothing to check: the model is generated."""

    def steps(self) -> list[Step]:
        return [Step(f"write the add_sub graph to {MODEL_FILE} (opset {OPSET})", _write)]

    def validation(self) -> str:
        return "run the ONNX checker and one onnxruntime inference"

    def validate(self, ctx: BuildContext) -> None:
        import numpy as np
        import onnx
        import onnxruntime as ort

        path = ctx.staging / MODEL_FILE
        try:
            onnx.checker.check_model(str(path))
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            a = np.arange(16, dtype=np.float32).reshape(1, 16)
            out0, out1 = session.run(["OUTPUT0", "OUTPUT1"], {"INPUT0": a, "INPUT1": a})
        except Exception as e:
            raise BuildFailed(f"{path} is not a working ONNX model: {e}") from e
        if not (np.array_equal(out0, a + a) and np.array_equal(out1, a - a)):
            raise BuildFailed(f"{path} does not compute INPUT0 + INPUT1 and INPUT0 - INPUT1")

    def owned_config(self) -> OwnedConfig:
        return OwnedConfig(platform="onnxruntime_onnx", template=CONFIG_PBTXT)

    def source(self) -> Mapping[str, Any]:
        return {"kind": "generated", "module": "builders.onnx_example"}

    def parameters(self) -> Mapping[str, Any]:
        return {"opset": OPSET, "ir_version": IR_VERSION, "model": MODEL_NAME}


def _write(ctx: BuildContext) -> None:
    build_add_sub_onnx(ctx.staging / MODEL_FILE)

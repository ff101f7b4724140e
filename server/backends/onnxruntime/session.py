"""onnxruntime sessions: the backend's parameters, execution providers, and the model's tensor types."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort

from server.errors import ConfigError, LoadError
from server.repository.model_config import InstanceKind
from server.scheduling.inline_gate import INLINE_PARAMETER
from server.scheduling.instances import InstanceSpec
from server.types import DataType

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

ORT_TYPES: dict[str, DataType] = {
    "tensor(bool)": DataType.BOOL, "tensor(uint8)": DataType.UINT8, "tensor(uint16)": DataType.UINT16,
    "tensor(uint32)": DataType.UINT32, "tensor(uint64)": DataType.UINT64, "tensor(int8)": DataType.INT8,
    "tensor(int16)": DataType.INT16, "tensor(int32)": DataType.INT32, "tensor(int64)": DataType.INT64,
    "tensor(float16)": DataType.FP16, "tensor(float)": DataType.FP32, "tensor(double)": DataType.FP64,
    "tensor(string)": DataType.BYTES, "tensor(bfloat16)": DataType.BF16,
}  # fmt: skip


@dataclass(frozen=True)
class OrtParameters:
    """The config.pbtxt `parameters` this backend reads (Triton's onnxruntime backend names)."""

    intra_op_thread_count: int = 0
    """Threads inside one operator; 0 lets onnxruntime choose."""
    inter_op_thread_count: int = 0
    """Threads across operators (parallel execution mode only); 0 lets onnxruntime choose."""

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> OrtParameters:
        known = {f.name for f in dataclasses.fields(cls)}
        params = {k: v for k, v in params.items() if k != INLINE_PARAMETER}  # the batcher's, not ours
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"unknown onnxruntime parameters {unknown} (known: {sorted(known)})")
        values: dict[str, int] = {}
        for key, text in params.items():
            try:
                values[key] = int(text)
            except ValueError:
                raise ConfigError(f"onnxruntime parameter {key} must be an integer, got {text!r}") from None
            if values[key] < 0:
                raise ConfigError(f"onnxruntime parameter {key} must be >= 0, got {values[key]}")
        return cls(**values)


def providers_for(instance: InstanceSpec) -> list[str | tuple[str, dict[str, object]]]:
    """CUDA for GPU (and AUTO, when this onnxruntime build has it), else CPU."""
    available = ort.get_available_providers()
    if instance.kind is InstanceKind.KIND_GPU and CUDA not in available:
        raise LoadError(
            f"instance '{instance.name}' is KIND_GPU, but this onnxruntime has no {CUDA} "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use KIND_CPU"
        )
    if instance.kind in (InstanceKind.KIND_GPU, InstanceKind.KIND_AUTO) and CUDA in available:
        return [(CUDA, {"device_id": instance.device_id}), CPU]
    return [CPU]


def create_session(path: Path, instance: InstanceSpec, params: OrtParameters) -> ort.InferenceSession:
    """A session for one instance.

    Raises:
        LoadError: the file is missing or onnxruntime cannot load it (the message names the path).
    """
    if not path.is_file():
        raise LoadError(f"ONNX model file {path} not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = params.intra_op_thread_count
    options.inter_op_num_threads = params.inter_op_thread_count
    # Spinning worker threads would steal the cores the gRPC event loop and other models need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=providers_for(instance))
    except LoadError:
        raise
    except Exception as e:
        raise LoadError(f"onnxruntime cannot load {path}: {type(e).__name__}: {e}") from e


def datatype_of(ort_type: str, where: str) -> DataType:
    dt = ORT_TYPES.get(ort_type)
    if dt is None:
        raise LoadError(f"{where} has type {ort_type}, which Hangar cannot serve")
    return dt


RunFn = Callable[[list[str], dict[str, np.ndarray], Any], list[Any]]
"""`run(output_names, feeds, run_options)`, as InferenceSession.run takes them."""


def run_function(session: ort.InferenceSession) -> RunFn:
    """InferenceSession.run, or on a CPU-only session its binding's run: the Python method checks the feed
    against the graph on every call (the backend checked the config against the graph at load) and falls
    back from a failing GPU provider (a CPU-only session has none): 19 us against 12 us for a
    two-input add/sub (docs/PERFORMANCE.md)."""
    inner = getattr(session, "_sess", None)
    run = getattr(inner, "run", None)
    if callable(run) and session.get_providers() == [CPU]:
        return cast(RunFn, run)
    return cast(RunFn, session.run)

"""The `triton_python_backend_utils` module that Python models import (as `pb_utils`)."""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from server.backends.python.pb_model_config import ModelConfig
from server.backends.python.pb_request import (
    TRITONSERVER_REQUEST_FLAG_SEQUENCE_END,
    TRITONSERVER_REQUEST_FLAG_SEQUENCE_START,
    InferenceRequest,
)
from server.backends.python.pb_response import InferenceResponse, TritonError, TritonModelException
from server.backends.python.pb_sender import TRITONSERVER_RESPONSE_COMPLETE_FINAL, ResponseSender
from server.backends.python.pb_tensor import Tensor
from server.types import DataType

MODULE_NAME = "triton_python_backend_utils"

__all__ = [
    "TRITONSERVER_REQUEST_FLAG_SEQUENCE_END",
    "TRITONSERVER_REQUEST_FLAG_SEQUENCE_START",
    "TRITONSERVER_REQUEST_RELEASE_ALL",
    "TRITONSERVER_REQUEST_RELEASE_RESCHEDULE",
    "TRITONSERVER_RESPONSE_COMPLETE_FINAL",
    "InferenceRequest",
    "InferenceResponse",
    "InferenceResponseSender",
    "LogLevel",
    "Logger",
    "ModelConfig",
    "Tensor",
    "TritonError",
    "TritonModelException",
    "deserialize_bytes_tensor",
    "get_input_config_by_name",
    "get_input_tensor_by_name",
    "get_output_config_by_name",
    "get_output_tensor_by_name",
    "numpy_to_triton_type",
    "serialize_byte_tensor",
    "triton_string_to_numpy",
    "triton_to_numpy_type",
    "using_decoupled_model_transaction_policy",
]

InferenceResponseSender = ResponseSender
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

# TRITONSERVER_DataType numbering, which is also model_config.proto's DataType numbering.
_TYPE_NUMBERS: dict[int, DataType] = {
    1: DataType.BOOL, 2: DataType.UINT8, 3: DataType.UINT16, 4: DataType.UINT32, 5: DataType.UINT64,
    6: DataType.INT8, 7: DataType.INT16, 8: DataType.INT32, 9: DataType.INT64, 10: DataType.FP16,
    11: DataType.FP32, 12: DataType.FP64, 13: DataType.BYTES, 14: DataType.BF16,
}  # fmt: skip


def get_input_tensor_by_name(inference_request: InferenceRequest, name: str) -> Tensor | None:
    return inference_request.input(name)


def get_output_tensor_by_name(inference_response: InferenceResponse, name: str) -> Tensor | None:
    return next((t for t in inference_response.output_tensors() if t.name() == name), None)


def get_input_config_by_name(model_config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((t for t in model_config.get("input", ()) if t.get("name") == name), None)


def get_output_config_by_name(model_config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((t for t in model_config.get("output", ()) if t.get("name") == name), None)


def using_decoupled_model_transaction_policy(model_config: Mapping[str, Any]) -> bool:
    return bool(model_config.get("model_transaction_policy", {}).get("decoupled", False))


def triton_string_to_numpy(triton_type_string: str) -> type:
    """`TYPE_FP32` -> numpy.float32; `TYPE_STRING` -> numpy.object_ (BF16 -> numpy.uint16 bit patterns)."""
    return DataType.from_config(triton_type_string).numpy_dtype.type


def triton_to_numpy_type(data_type: int) -> type | None:
    dt = _TYPE_NUMBERS.get(data_type)
    return None if dt is None else dt.numpy_dtype.type


def numpy_to_triton_type(data_type: Any) -> int | None:
    try:
        dt = DataType.from_numpy(np.dtype(data_type))
    except Exception:
        return None
    return next(n for n, d in _TYPE_NUMBERS.items() if d is dt)


def serialize_byte_tensor(input_tensor: np.ndarray) -> np.ndarray:
    """BYTES elements as one flat uint8 array of 4-byte little-endian lengths and contents."""
    if input_tensor.size == 0:
        return np.empty(0, dtype=np.uint8)
    parts: list[bytes] = []
    for obj in input_tensor.reshape(-1):
        raw = obj if isinstance(obj, bytes) else str(obj).encode("utf-8")
        parts += [len(raw).to_bytes(4, "little"), raw]
    return np.frombuffer(b"".join(parts), dtype=np.uint8)


def deserialize_bytes_tensor(encoded_tensor: bytes | np.ndarray) -> np.ndarray:
    """The inverse of `serialize_byte_tensor`: a flat object array of bytes."""
    raw = encoded_tensor.tobytes() if isinstance(encoded_tensor, np.ndarray) else bytes(encoded_tensor)
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        n = int.from_bytes(raw[offset : offset + 4], "little")
        items.append(raw[offset + 4 : offset + 4 + n])
        offset += 4 + n
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


class LogLevel(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2
    VERBOSE = 3


_LOG = logging.getLogger("hangar.python_model")
_LEVELS = {LogLevel.INFO: logging.INFO, LogLevel.WARNING: logging.WARNING, LogLevel.ERROR: logging.ERROR,
           LogLevel.VERBOSE: logging.DEBUG}  # fmt: skip


class Logger:
    """pb_utils.Logger: model log lines go to the server's log."""

    @staticmethod
    def log(message: str, level: LogLevel = LogLevel.INFO) -> None:
        _LOG.log(_LEVELS.get(LogLevel(level), logging.INFO), "%s", message)

    @staticmethod
    def log_info(message: str) -> None:
        _LOG.info("%s", message)

    @staticmethod
    def log_warn(message: str) -> None:
        _LOG.warning("%s", message)

    @staticmethod
    def log_error(message: str) -> None:
        _LOG.error("%s", message)

    @staticmethod
    def log_verbose(message: str) -> None:
        _LOG.debug("%s", message)


def register() -> None:
    """Make `import triton_python_backend_utils` in model code resolve to this module."""
    sys.modules[MODULE_NAME] = sys.modules[__name__]

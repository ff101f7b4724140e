"""Domain request, response and tensor types shared by the transport, the schedulers and the backends."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

ParamValue = bool | int | float | str
"""A request or response parameter value (InferParameter's oneof, without the wire type)."""


class DataType(enum.Enum):
    """Tensor element types; the value is the API string (PROTOCOL.md 1.5)."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"
    BF16 = "BF16"

    # Members are singletons: identity hashing keeps the per-tensor dict lookups in C (Enum's own
    # __hash__ is Python code hashing the name, a measurable cost on the request path).
    __hash__ = object.__hash__

    @classmethod
    def from_api(cls, name: str) -> DataType:
        try:
            return cls(name)
        except ValueError:
            from server.errors import InvalidInput

            raise InvalidInput(f"unknown datatype '{name}'") from None

    @classmethod
    def from_config(cls, name: str) -> DataType:
        """From a model-config enum name such as TYPE_FP32 or TYPE_STRING."""
        key = name.removeprefix("TYPE_")
        if key == "STRING":
            return cls.BYTES
        try:
            return cls(key)
        except ValueError:
            from server.errors import ConfigError

            raise ConfigError(f"unknown data_type '{name}'") from None

    @property
    def config_name(self) -> str:
        return "TYPE_STRING" if self is DataType.BYTES else f"TYPE_{self.value}"

    @property
    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype holding this type; BF16 is carried as its raw uint16 bit pattern."""
        return np.dtype(_NUMPY[self])

    @property
    def itemsize(self) -> int:
        """Bytes per element on the wire; 0 for BYTES (variable)."""
        return 0 if self is DataType.BYTES else _NUMPY_ITEMSIZE[self]

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> DataType:
        dtype = np.dtype(dtype)
        if dtype.kind in ("O", "S", "U"):
            return cls.BYTES
        dt = _FROM_NUMPY.get(dtype)
        if dt is not None:
            return dt
        from server.errors import InvalidInput

        raise InvalidInput(f"numpy dtype '{dtype}' has no tensor datatype")


_NUMPY: dict[DataType, str] = {
    DataType.BOOL: "bool",
    DataType.UINT8: "uint8",
    DataType.UINT16: "uint16",
    DataType.UINT32: "uint32",
    DataType.UINT64: "uint64",
    DataType.INT8: "int8",
    DataType.INT16: "int16",
    DataType.INT32: "int32",
    DataType.INT64: "int64",
    DataType.FP16: "float16",
    DataType.FP32: "float32",
    DataType.FP64: "float64",
    DataType.BYTES: "object",
    DataType.BF16: "uint16",
}
_NUMPY_ITEMSIZE = {dt: np.dtype(n).itemsize for dt, n in _NUMPY.items() if dt is not DataType.BYTES}
# A dict lookup: from_numpy runs for every tensor of every request.
_FROM_NUMPY = {np.dtype(n): dt for dt, n in _NUMPY.items() if dt not in (DataType.BYTES, DataType.BF16)}


class Tensor(NamedTuple):
    """A named tensor. BYTES data is a numpy object array of `bytes`; BF16 data holds uint16 bit patterns.

    Immutable like a frozen dataclass, but a NamedTuple: several are built for every request, and a
    tuple is built in half the time.
    """

    name: str
    datatype: DataType
    data: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.data.shape)

    @classmethod
    def from_numpy(cls, name: str, array: np.ndarray, datatype: DataType | None = None) -> Tensor:
        return cls(name, datatype or DataType.from_numpy(array.dtype), array)


new_tensor: Callable[[type[Tensor], tuple[str, DataType, np.ndarray]], Tensor] = tuple.__new__
"""`new_tensor(Tensor, (name, datatype, data))` builds a Tensor without the NamedTuple's Python-level
__new__, at half the cost: for the per-request paths, which build four or more."""


_CANCEL_LOCK = threading.Lock()
"""Shared by every CancelToken: its critical sections are a few instructions, and a lock per token would
be one more allocation per request."""


class CancelToken:
    """Set once when the client cancels; backends poll `is_cancelled` or register callbacks."""

    __slots__ = ("_callbacks", "_cancelled")

    def __init__(self) -> None:
        # A plain flag, not a threading.Event: one token is made per request, and nobody waits on it.
        self._cancelled = False
        self._callbacks: list[Callable[[], None]] | None = None  # most requests register none

    def cancel(self) -> None:
        with _CANCEL_LOCK:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks, self._callbacks = self._callbacks, None
        for cb in callbacks or ():
            cb()

    def is_cancelled(self) -> bool:
        return self._cancelled

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run `callback` on cancel (at once if already cancelled); it must be cheap and thread-safe."""
        with _CANCEL_LOCK:
            if not self._cancelled:
                if self._callbacks is None:
                    self._callbacks = [callback]
                else:
                    self._callbacks.append(callback)
                return
        callback()


@dataclass(slots=True)
class RequestTimes:
    """Monotonic nanosecond timestamps of a request's phases (0 = not reached); feeds stats and traces."""

    received_ns: int = field(default_factory=time.monotonic_ns)
    queue_start_ns: int = 0
    compute_start_ns: int = 0
    compute_input_end_ns: int = 0
    compute_output_start_ns: int = 0
    compute_end_ns: int = 0
    first_response_ns: int = 0


@dataclass(frozen=True)
class RequestUsage:
    """What an LLM request consumed and why it stopped (OpenAI-style `finish_reason`)."""

    prompt_tokens: int
    output_tokens: int
    finish_reason: str
    """One of: stop (EOS or a stop word), length (max tokens), cancelled, error."""


@dataclass(slots=True)
class InferRequest:
    """One inference request after validation: inputs by name, requested outputs (None = all)."""

    model_name: str
    model_version: str
    id: str
    inputs: dict[str, Tensor]
    requested_outputs: tuple[str, ...] | None = None
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)
    cancel: CancelToken = field(default_factory=CancelToken)
    times: RequestTimes = field(default_factory=RequestTimes)
    trace_context: Mapping[str, str] = field(default_factory=dict)
    """W3C trace headers (traceparent, tracestate) from the client, for the telemetry layer."""
    usage: RequestUsage | None = None
    """Set by LLM backends before their final response; read by stats, traces and logs."""


@dataclass(slots=True)
class InferResponse:
    """One response of a request; decoupled models produce several, the last with `final=True`.

    A response with `error` set is a failure of that request only; `outputs` is then empty.
    """

    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor] = field(default_factory=list)
    parameters: dict[str, ParamValue] = field(default_factory=dict)
    final: bool = True
    error: Exception | None = None

    @property
    def is_empty_final(self) -> bool:
        return self.final and not self.outputs and self.error is None

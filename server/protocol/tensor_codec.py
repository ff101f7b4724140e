"""Tensor data on the wire <-> numpy: raw bytes (BYTES with 4-byte LE length prefixes) and typed contents."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from server.errors import InvalidInput
from server.types import DataType, Tensor

_LEN = struct.Struct("<I")
_NUMPY = {dt: dt.numpy_dtype for dt in DataType}
_ITEMSIZE = {dt: dt.itemsize for dt in DataType}

# The typed InferTensorContents field of each datatype (PROTOCOL.md 1.5); FP16 and BF16 travel raw only.
TYPED_FIELD: dict[DataType, str] = {
    DataType.BOOL: "bool_contents",
    DataType.UINT8: "uint_contents",
    DataType.UINT16: "uint_contents",
    DataType.UINT32: "uint_contents",
    DataType.UINT64: "uint64_contents",
    DataType.INT8: "int_contents",
    DataType.INT16: "int_contents",
    DataType.INT32: "int_contents",
    DataType.INT64: "int64_contents",
    DataType.FP32: "fp32_contents",
    DataType.FP64: "fp64_contents",
    DataType.BYTES: "bytes_contents",
}
# The datatype each typed field holds; Triton names it when the field does not match the tensor's datatype.
_FIELD_TYPE = {
    "bool_contents": DataType.BOOL,
    "int_contents": DataType.INT32,
    "int64_contents": DataType.INT64,
    "uint_contents": DataType.UINT32,
    "uint64_contents": DataType.UINT64,
    "fp32_contents": DataType.FP32,
    "fp64_contents": DataType.FP64,
    "bytes_contents": DataType.BYTES,
}


def dims_str(dims: Sequence[int]) -> str:
    """Triton's rendering of a shape: [1,-1,4]."""
    return "[" + ",".join(str(d) for d in dims) + "]"


def element_count(name: str, shape: tuple[int, ...], model: str, prefix: str) -> int:
    """Elements in `shape`; a negative (unspecified) dimension is the client's error."""
    if shape and min(shape) < 0:
        raise InvalidInput(
            f"{prefix}All input dimensions should be specified for input '{name}' for model '{model}', "
            f"got {dims_str(shape)}"
        )
    return math.prod(shape)


def decode_raw(
    name: str, dtype: DataType, shape: tuple[int, ...], raw: bytes, model: str, prefix: str
) -> np.ndarray:
    """A raw_input_contents entry as an array of `shape`; numeric data is a read-only view of `raw`."""
    count = element_count(name, shape, model, prefix)
    if dtype is DataType.BYTES:
        return deserialize_bytes(raw, count, name, model, prefix).reshape(shape)
    expected = count * _ITEMSIZE[dtype]
    if len(raw) != expected:
        raise InvalidInput(
            f"{prefix}input byte size mismatch for input '{name}' for model '{model}'. "
            f"Expected {expected}, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=_NUMPY[dtype]).reshape(shape)


def decode_typed(
    name: str, dtype: DataType, shape: tuple[int, ...], contents: Any, model: str, prefix: str
) -> np.ndarray:
    """An InferTensorContents as an array of `shape`; exactly the datatype's own field may be set."""
    count = element_count(name, shape, model, prefix)
    fields = contents.ListFields()
    values: Sequence[Any] = ()
    if len(fields) > 1:
        raise InvalidInput(
            f"unexpected explicit tensor data for input tensor '{name}' for model '{model}', "
            "binary data was already supplied."
        )
    if fields:
        field, values = fields[0]
        if field.name != TYPED_FIELD.get(dtype):
            raise InvalidInput(
                f"unexpected explicit tensor data for input tensor '{name}' for model '{model}' of type "
                f"'{_FIELD_TYPE[field.name].value}', expected datatype '{dtype.value}'"
            )
    if dtype is DataType.BYTES:
        if len(values) != count:
            raise _string_count_error(name, model, prefix, count, len(values))
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    if len(values) != count:
        raise InvalidInput(
            f"{prefix}input byte size mismatch for input '{name}' for model '{model}'. "
            f"Expected {count * dtype.itemsize}, got {len(values) * dtype.itemsize}"
        )
    if not fields:
        return np.empty(shape, dtype=dtype.numpy_dtype)
    # int_contents / uint_contents carry the 8- and 16-bit types too; Triton keeps the low bytes.
    held = np.array(values, dtype=_FIELD_TYPE[fields[0][0].name].numpy_dtype)
    return held.astype(dtype.numpy_dtype, copy=False).reshape(shape)


def deserialize_bytes(buf: bytes, count: int, name: str, model: str, prefix: str) -> np.ndarray:
    """Length-prefixed BYTES elements as a 1-D object array of exactly `count` bytes objects."""
    out = np.empty(count, dtype=object)
    size, offset, index = len(buf), 0, 0
    unpack = _LEN.unpack_from
    while offset < size:
        if size - offset < 4:
            raise InvalidInput(
                f"{prefix}incomplete string length indicator for inference input '{name}' for model "
                f"'{model}', expecting 4 bytes but only {size - offset} bytes available"
            )
        (length,) = unpack(buf, offset)
        offset += 4
        end = offset + length
        if end > size:
            raise InvalidInput(
                f"{prefix}element byte size indicator exceeds the end of the buffer for inference "
                f"input '{name}' for model '{model}' (element {index} needs {length} bytes, "
                f"{size - offset} left)"
            )
        if index >= count:
            raise InvalidInput(
                f"{prefix}unexpected number of string elements {index + 1} for inference input "
                f"'{name}' for model '{model}', expecting {count}"
            )
        out[index] = buf[offset:end]
        index += 1
        offset = end
    if index != count:
        raise _string_count_error(name, model, prefix, count, index)
    return out


def _string_count_error(name: str, model: str, prefix: str, expected: int, got: int) -> InvalidInput:
    return InvalidInput(
        f"{prefix}expected {expected} string elements for inference input '{name}' for model "
        f"'{model}', got {got}"
    )


def _element_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    return str(item).encode("utf-8")


def serialize_bytes(data: np.ndarray) -> bytes:
    """BYTES elements (bytes, str or anything printable), row-major, each behind its 4-byte LE length."""
    pack = _LEN.pack
    parts: list[bytes] = []
    for item in data.ravel():
        b = _element_bytes(item)
        parts.append(pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def _bf16_bits(data: np.ndarray) -> np.ndarray:
    """float -> bfloat16 bit patterns, rounding to nearest even (NaN stays NaN)."""
    bits = np.ascontiguousarray(data, dtype=np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(data), np.uint16(0x7FC0), rounded)


def encode_raw(tensor: Tensor) -> bytes:
    """A tensor's data as Triton's raw_output_contents bytes (row-major, little-endian)."""
    dtype, data = tensor.datatype, tensor.data
    if dtype is DataType.BYTES:
        return serialize_bytes(data)
    want = _NUMPY[dtype]
    if data.dtype is want:  # the common case (native numeric data): its bytes are the wire form
        return data.tobytes()
    if dtype is DataType.BF16 and data.dtype != np.uint16:
        # Float values are rounded to bfloat16; a 2-byte non-numeric dtype (ml_dtypes.bfloat16) is
        # already bfloat16 and only needs viewing as its bit patterns.
        if data.dtype.kind == "f":
            data = _bf16_bits(data)
        elif data.dtype.itemsize == 2:
            data = data.view(np.uint16)
    if data.dtype != want:
        data = data.astype(want)
    return data.tobytes()

"""BYTES serialization, raw decoding edge cases and output encoding."""

from __future__ import annotations

import numpy as np
import pytest

from server.errors import InvalidInput
from server.protocol.tensor_codec import decode_raw, deserialize_bytes, dims_str, encode_raw, serialize_bytes
from server.types import DataType, Tensor


def test_bytes_round_trip_keeps_every_byte() -> None:
    items = [b"", b"\x00", b"\x00\x00abc\x00", bytes(range(256)) * 3, "ünïcode".encode()]
    array = np.empty(len(items), dtype=object)
    array[:] = items
    buf = serialize_bytes(array)
    assert buf[:4] == b"\x00\x00\x00\x00" and buf[4:8] == b"\x01\x00\x00\x00"
    assert deserialize_bytes(buf, len(items), "x", "m", "").tolist() == items


def test_serialize_accepts_str_and_numpy_string_arrays() -> None:
    assert serialize_bytes(np.array(["ab", "c"])) == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert serialize_bytes(np.array([b"ab"], dtype=np.bytes_)) == b"\x02\x00\x00\x00ab"
    assert serialize_bytes(np.array([[7]], dtype=object)) == b"\x01\x00\x00\x007"


def test_scalar_and_empty_tensors_decode() -> None:
    scalar = decode_raw("s", DataType.INT64, (), np.int64(5).tobytes(), "m", "")
    assert scalar.shape == () and int(scalar) == 5
    empty = decode_raw("e", DataType.FP32, (0, 4), b"", "m", "")
    assert empty.shape == (0, 4)
    assert decode_raw("b", DataType.BYTES, (0,), b"", "m", "").shape == (0,)


def test_huge_shape_with_little_data_is_a_size_error_not_an_allocation() -> None:
    with pytest.raises(InvalidInput, match="Expected 4398046511104, got 4"):
        decode_raw("x", DataType.FP32, (1 << 40,), b"\0\0\0\0", "m", "")


def test_encode_coerces_to_the_declared_datatype() -> None:
    t = Tensor("o", DataType.FP32, np.array([1, 2], dtype=np.int64))
    assert encode_raw(t) == np.array([1, 2], dtype=np.float32).tobytes()
    t = Tensor("o", DataType.BOOL, np.array([0, 3], dtype=np.int32))
    assert encode_raw(t) == b"\x00\x01"
    transposed = np.arange(6, dtype=np.int32).reshape(2, 3).T
    assert encode_raw(Tensor("o", DataType.INT32, transposed)) == np.ascontiguousarray(transposed).tobytes()


def test_bf16_from_floats_rounds_to_nearest_even() -> None:
    values = np.array([1.0, 1.00390625, 1.01171875, -0.0, np.inf, np.nan], dtype=np.float32)
    bits = np.frombuffer(encode_raw(Tensor("b", DataType.BF16, values)), dtype=np.uint16)
    assert bits[:5].tolist() == [0x3F80, 0x3F80, 0x3F82, 0x8000, 0x7F80]
    assert (bits[5] & 0x7F80) == 0x7F80 and (bits[5] & 0x7F) != 0


def test_dims_str_matches_triton() -> None:
    assert dims_str((-1, 16)) == "[-1,16]"
    assert dims_str(()) == "[]"

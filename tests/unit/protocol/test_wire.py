"""infer_response_bytes: the hand-encoded ModelInferResponse is byte for byte what protobuf serializes."""

from __future__ import annotations

import numpy as np
import pytest

from server.protocol import wire
from server.protocol.convert import response_to_pb
from server.protocol.gen import grpc_service_pb2 as pb
from server.types import DataType, InferResponse, Tensor


def response(*outputs: Tensor, model: str = "m", version: str = "1", rid: str = "r-1") -> InferResponse:
    return InferResponse(model, version, rid, list(outputs))


CASES = {
    "numeric": response(
        Tensor("OUTPUT0", DataType.FP32, np.arange(16, dtype=np.float32).reshape(1, 16)),
        Tensor("OUTPUT1", DataType.INT64, np.array([[-1, 2**40]], dtype=np.int64)),
    ),
    "empty ids and versions": response(Tensor("Y", DataType.INT8, np.zeros(3, np.int8)), version="", rid=""),
    "scalar and zero-size": response(
        Tensor("S", DataType.FP64, np.array(2.5)), Tensor("Z", DataType.FP32, np.zeros((0, 4), np.float32))
    ),
    "long data and big dims": response(Tensor("L", DataType.UINT8, np.ones((3, 70_000), np.uint8))),
    "bytes": response(Tensor("T", DataType.BYTES, np.array([b"ab", "\u00e9", b""], dtype=object))),
    "bf16 from floats": response(Tensor("H", DataType.BF16, np.array([1.0, -2.5], np.float32))),
    "not contiguous": response(Tensor("N", DataType.INT32, np.arange(12, dtype=np.int32).reshape(3, 4).T)),
    "unicode names": response(Tensor("\u00fcber", DataType.BOOL, np.array([True])), model="m\u00f6del"),
    "no outputs": response(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bytes_equal_protobufs_own_serialization(case: str) -> None:
    r = CASES[case]
    encoded = wire.infer_response_bytes(r)
    assert encoded == response_to_pb(r).SerializeToString()
    parsed = pb.ModelInferResponse.FromString(encoded)  # and it parses back to the same message
    assert parsed == response_to_pb(r)


def test_a_response_with_parameters_takes_the_message_path() -> None:
    r = response(Tensor("Y", DataType.FP32, np.ones(2, np.float32)))
    r.parameters = {"triton_final_response": True, "n": 3, "s": "x"}
    parsed = pb.ModelInferResponse.FromString(wire.infer_response_bytes(r))
    assert parsed.parameters["n"].int64_param == 3 and parsed.parameters["s"].string_param == "x"
    assert list(parsed.outputs[0].shape) == [2]


def test_varint_matches_protobuf_for_edges() -> None:
    for n in (0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63)):
        msg = pb.ModelInferResponse.InferOutputTensor(shape=[n])
        assert msg.SerializeToString() == b"\x1a" + wire.varint(len(wire.varint(n))) + wire.varint(n)


def test_header_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_MAX_HEADERS", 4)
    monkeypatch.setattr(wire, "_headers", {})
    for rows in range(1, 11):
        r = response(Tensor("Y", DataType.FP32, np.ones((rows, 2), np.float32)))
        assert wire.infer_response_bytes(r) == response_to_pb(r).SerializeToString()
        assert len(wire._headers) <= 4

"""ModelInferRequest <-> domain conversion, checked against tritonclient's own encoder and decoder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from server.errors import InvalidInput, Unsupported
from server.protocol.convert import (
    parse_model_version,
    request_from_pb,
    response_to_pb,
    stream_error_to_pb,
    stream_response_to_pb,
)
from server.protocol.gen import grpc_service_pb2 as pb
from server.types import DataType, InferResponse, Tensor

grpcclient = pytest.importorskip("tritonclient.grpc")
ml_dtypes = pytest.importorskip("ml_dtypes")
from tritonclient.grpc import service_pb2 as triton_pb  # noqa: E402
from tritonclient.grpc._utils import _get_inference_request  # noqa: E402

NUMERIC = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 7, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-32768, 0, 32767]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[-1.5, 0.0, 65504.0]], dtype=np.float16),
    "FP32": np.array([[-1.5, 0.25, 3.0e38]], dtype=np.float32),
    "FP64": np.array([[-1.5, 0.25, 1.0e308]], dtype=np.float64),
}
BINARY = np.array([[b"plain", b"", b"nul\x00inside", bytes(range(256))]], dtype=object)


def _client_request(arrays: dict[str, np.ndarray], **kwargs: object) -> pb.ModelInferRequest:
    """Builds the request tritonclient would send, then parses its bytes with our stubs."""
    inputs = []
    for name, array in arrays.items():
        dtype = grpcclient.np_to_triton_dtype(array.dtype) if array.dtype != object else "BYTES"
        inp = grpcclient.InferInput(name, list(array.shape), dtype)
        inp.set_data_from_numpy(array)
        inputs.append(inp)
    names: list[str] = kwargs.pop("outputs", [])  # type: ignore[assignment]
    outputs = [grpcclient.InferRequestedOutput(n) for n in names]
    args: dict[str, object] = dict(
        model_version="",
        request_id="",
        outputs=outputs or None,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        parameters=None,
    )
    args.update(kwargs)
    request = _get_inference_request(model_name="m", inputs=inputs, **args)
    return pb.ModelInferRequest.FromString(request.SerializeToString())


@pytest.mark.parametrize("dtype", sorted(NUMERIC))
def test_raw_numeric_inputs_decode_exactly(dtype: str) -> None:
    array = NUMERIC[dtype]
    request = request_from_pb(_client_request({"IN": array}))
    tensor = request.inputs["IN"]
    assert tensor.datatype is DataType(dtype)
    assert tensor.data.dtype == array.dtype
    np.testing.assert_array_equal(tensor.data, array)
    assert not tensor.data.flags.writeable  # a zero-copy view of the request bytes


def test_raw_bf16_input_is_uint16_bits() -> None:
    array = np.array([[1.5, -2.0, 3.140625]], dtype=ml_dtypes.bfloat16)
    tensor = request_from_pb(_client_request({"IN": array})).inputs["IN"]
    assert tensor.datatype is DataType.BF16
    np.testing.assert_array_equal(tensor.data, array.view(np.uint16))


def test_raw_bytes_round_trip_nul_and_binary() -> None:
    tensor = request_from_pb(_client_request({"TEXT": BINARY})).inputs["TEXT"]
    assert tensor.datatype is DataType.BYTES and tensor.data.shape == (1, 4)
    assert tensor.data.tolist() == BINARY.tolist()
    assert all(type(x) is bytes for x in tensor.data.ravel())


def test_request_metadata_parameters_and_outputs() -> None:
    msg = _client_request(
        {"IN": NUMERIC["FP32"]},
        outputs=["B", "A", "B"],
        request_id="req-1",
        model_version="3",
        sequence_id=42,
        sequence_start=True,
        priority=2,
        timeout=1000,
        parameters={"temperature": 0.5, "mode": "fast", "n": 3, "flag": True},
    )
    request = request_from_pb(msg)
    assert (request.model_name, request.model_version, request.id) == ("m", "3", "req-1")
    assert request.requested_outputs == ("B", "A")
    assert request.parameters == {
        "sequence_id": 42,
        "sequence_start": True,
        "sequence_end": False,
        "priority": 2,
        "timeout": 1000,
        "temperature": 0.5,
        "mode": "fast",
        "n": 3,
        "flag": True,
    }
    assert request_from_pb(_client_request({"IN": NUMERIC["FP32"]})).requested_outputs is None


def _typed(dtype: str, field: str, values: list[object], shape: list[int]) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m", id="t")
    inp = msg.inputs.add(name="IN", datatype=dtype, shape=shape)
    getattr(inp.contents, field).extend(values)
    return msg


@pytest.mark.parametrize(
    ("dtype", "field", "values"),
    [
        ("BOOL", "bool_contents", [True, False]),
        ("UINT8", "uint_contents", [0, 255]),
        ("UINT16", "uint_contents", [1, 65535]),
        ("UINT32", "uint_contents", [1, 2**32 - 1]),
        ("UINT64", "uint64_contents", [1, 2**64 - 1]),
        ("INT8", "int_contents", [-128, 127]),
        ("INT16", "int_contents", [-32768, 32767]),
        ("INT32", "int_contents", [-(2**31), 2**31 - 1]),
        ("INT64", "int64_contents", [-(2**63), 2**63 - 1]),
        ("FP32", "fp32_contents", [0.5, -3.25]),
        ("FP64", "fp64_contents", [0.1, -1e300]),
        ("BYTES", "bytes_contents", [b"a\x00b", b""]),
    ],
)
def test_typed_contents_decode_for_every_typed_datatype(dtype: str, field: str, values: list[object]) -> None:
    tensor = request_from_pb(_typed(dtype, field, values, [1, 2])).inputs["IN"]
    assert tensor.datatype is DataType(dtype)
    assert tensor.data.shape == (1, 2)
    if dtype != "BYTES":
        assert tensor.data.dtype == DataType(dtype).numpy_dtype
    assert tensor.data.ravel().tolist() == values


def _err(msg: pb.ModelInferRequest, exc: type[Exception] = InvalidInput) -> str:
    with pytest.raises(exc) as info:
        request_from_pb(msg)
    return str(info.value)


def test_raw_byte_count_mismatch_names_tensor_and_counts() -> None:
    msg = _client_request({"IN": NUMERIC["FP32"]}, request_id="r9")
    msg.inputs[0].shape[:] = [1, 4]
    text = _err(msg)
    assert (
        text == "[request id: r9] input byte size mismatch for input 'IN' for model 'm'. Expected 16, got 12"
    )


def test_typed_count_mismatch_reports_byte_sizes() -> None:
    text = _err(_typed("INT32", "int_contents", [1, 2, 3], [2]))
    assert "input byte size mismatch for input 'IN' for model 'm'. Expected 8, got 12" in text


def test_raw_and_typed_mixed_is_refused_with_tritons_text() -> None:
    msg = _client_request({"A": NUMERIC["INT32"]})
    extra = msg.inputs.add(name="B", datatype="INT32", shape=[1])
    extra.contents.int_contents.append(1)
    assert (
        _err(msg)
        == "contents field must not be specified when using raw_input_contents for 'B' for model 'm'"
    )


@pytest.mark.parametrize(
    ("dtype", "field", "expected"),
    [
        ("FP32", "int_contents", "of type 'INT32', expected datatype 'FP32'"),
        ("FP16", "fp32_contents", "of type 'FP32', expected datatype 'FP16'"),
        ("BF16", "uint_contents", "of type 'UINT32', expected datatype 'BF16'"),
        ("INT64", "bytes_contents", "of type 'BYTES', expected datatype 'INT64'"),
    ],
)
def test_typed_field_of_the_wrong_type(dtype: str, field: str, expected: str) -> None:
    value = b"x" if field == "bytes_contents" else 1
    text = _err(_typed(dtype, field, [value], [1]))
    assert text.startswith("unexpected explicit tensor data for input tensor 'IN' for model 'm'")
    assert expected in text


def test_two_typed_fields_at_once() -> None:
    msg = _typed("INT32", "int_contents", [1], [1])
    msg.inputs[0].contents.fp32_contents.append(1.0)
    assert "binary data was already supplied" in _err(msg)


def test_fp16_with_empty_contents_reports_missing_bytes() -> None:
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="H", datatype="FP16", shape=[3]).contents.SetInParent()
    assert "input byte size mismatch for input 'H' for model 'm'. Expected 6, got 0" in _err(msg)


def test_missing_and_surplus_raw_contents() -> None:
    msg = _client_request({"A": NUMERIC["INT32"]})
    msg.inputs.add(name="B", datatype="INT32", shape=[1])
    assert _err(msg) == "unable to find data for input tensor 'B' for model 'm' in request."
    msg = _client_request({"A": NUMERIC["INT32"]})
    msg.raw_input_contents.append(b"\0\0\0\0")
    assert "expected 1 raw_input_contents (one per input) for model 'm', got 2" in _err(msg)


@pytest.mark.parametrize(
    ("raw", "shape", "fragment"),
    [
        (b"\x05\x00\x00\x00abc", [1], "element byte size indicator exceeds the end of the buffer"),
        (b"\x01\x00\x00\x00a\x01\x00", [2], "incomplete string length indicator for inference input 'S'"),
        (
            b"\x01\x00\x00\x00a",
            [2],
            "expected 2 string elements for inference input 'S' for model 'm', got 1",
        ),
        (
            b"\x01\x00\x00\x00a\x01\x00\x00\x00b",
            [1],
            "unexpected number of string elements 2 for inference input 'S' for model 'm', expecting 1",
        ),
    ],
)
def test_malformed_raw_bytes(raw: bytes, shape: list[int], fragment: str) -> None:
    msg = pb.ModelInferRequest(model_name="m", id="q")
    msg.inputs.add(name="S", datatype="BYTES", shape=shape)
    msg.raw_input_contents.append(raw)
    text = _err(msg)
    assert fragment in text and text.startswith("[request id: q] ")


@pytest.mark.parametrize("shape", [[-1], [-1, 2], [2, -1], [-2]])
def test_negative_dims_of_raw_numeric_data_are_refused(shape: list[int]) -> None:
    # numpy would take a lone -1 as "whatever the buffer holds": the decoder must refuse it first
    msg = pb.ModelInferRequest(model_name="m", id="q")
    msg.inputs.add(name="x", datatype="INT32", shape=shape)
    msg.raw_input_contents.append(bytes(8))
    assert "All input dimensions should be specified for input 'x' for model 'm'" in _err(msg)


def test_typed_bytes_count_mismatch() -> None:
    text = _err(_typed("BYTES", "bytes_contents", [b"a"], [2]))
    assert "expected 2 string elements for inference input 'IN' for model 'm', got 1" in text


@pytest.mark.parametrize(
    ("mutate", "fragment", "exc"),
    [
        (
            lambda m: m.inputs[0].shape.__setitem__(0, -1),
            "All input dimensions should be specified",
            InvalidInput,
        ),
        (
            lambda m: setattr(m.inputs[0], "datatype", "FLOAT"),
            "invalid datatype 'FLOAT' for input 'IN'",
            InvalidInput,
        ),
        (lambda m: setattr(m, "model_version", "v2"), "version string 'v2'", InvalidInput),
        (lambda m: setattr(m, "model_version", "-1"), "invalid model version specified '-1'", InvalidInput),
        (
            lambda m: m.inputs[0].parameters["shared_memory_region"].__setattr__("string_param", "r"),
            "uses client shared memory",
            Unsupported,
        ),
        (
            lambda m: m.outputs.add(name="O").parameters["classification"].__setattr__("int64_param", 3),
            "classification of output 'O'",
            Unsupported,
        ),
        (
            lambda m: m.parameters["triton_bogus"].__setattr__("bool_param", True),
            "reserved for Triton",
            InvalidInput,
        ),
        (
            lambda m: m.parameters["priority"].__setattr__("string_param", "hi"),
            "'priority' parameter",
            InvalidInput,
        ),
        (
            lambda m: m.parameters["priority"].__setattr__("int64_param", -1),
            "expected value >= 0",
            InvalidInput,
        ),
        (lambda m: m.parameters["x"].SetInParent(), "'x' parameter, no value is set", InvalidInput),
    ],
)
def test_bad_requests_name_the_offending_value(
    mutate: Callable[[Any], object], fragment: str, exc: type[Exception]
) -> None:
    msg = _client_request({"IN": NUMERIC["INT32"]})
    mutate(msg)
    assert fragment in _err(msg, exc)


def test_duplicate_input_name() -> None:
    msg = _client_request({"IN": NUMERIC["INT32"]})
    msg.inputs.add().CopyFrom(msg.inputs[0])
    msg.raw_input_contents.append(msg.raw_input_contents[0])
    assert "input 'IN' already exists in request" in _err(msg)


def test_parse_model_version() -> None:
    assert parse_model_version("") is None
    assert parse_model_version("7") == 7
    for bad in (" 7", "+7", "7_0", "\u0663", "1e3", "99999999999999999999"):
        with pytest.raises(InvalidInput, match="failed to get model version"):
            parse_model_version(bad)


def _as_client_result(msg: pb.ModelInferResponse) -> Any:
    return grpcclient.InferResult(triton_pb.ModelInferResponse.FromString(msg.SerializeToString()))


def test_response_outputs_are_always_raw_and_decode_in_tritonclient() -> None:
    outputs = [Tensor(f"O_{k}", DataType(k), v) for k, v in NUMERIC.items()]
    outputs.append(Tensor("TEXT", DataType.BYTES, np.array([["héllo", b"\x00\xff"]], dtype=object)))
    bf16 = np.array([[1.5, -2.0]], dtype=np.float32)
    outputs.append(Tensor("HALFB", DataType.BF16, bf16))
    response = InferResponse("m", "2", "rid", outputs=outputs, parameters={"count": 3, "ok": True, "s": "x"})
    msg = response_to_pb(response)
    assert (msg.model_name, msg.model_version, msg.id) == ("m", "2", "rid")
    assert len(msg.raw_output_contents) == len(outputs)
    assert all(not o.HasField("contents") for o in msg.outputs)
    result = _as_client_result(msg)
    for k, v in NUMERIC.items():
        np.testing.assert_array_equal(result.as_numpy(f"O_{k}"), v)
    assert result.as_numpy("TEXT").tolist() == [["héllo".encode(), b"\x00\xff"]]
    np.testing.assert_array_equal(result.as_numpy("HALFB").astype(np.float32), bf16)
    params = result.get_response().parameters
    assert params["count"].int64_param == 3 and params["ok"].bool_param and params["s"].string_param == "x"


def test_response_bf16_from_bit_patterns_and_ml_dtypes() -> None:
    bits = np.array([0x3FC0, 0xC000], dtype=np.uint16)
    for data in (bits, bits.view(ml_dtypes.bfloat16)):
        msg = response_to_pb(InferResponse("m", "1", "", outputs=[Tensor("B", DataType.BF16, data)]))
        assert msg.raw_output_contents[0] == bits.tobytes()


def test_stream_responses_carry_final_flag_and_empty_final() -> None:
    data = InferResponse(
        "m", "1", "r", outputs=[Tensor("O", DataType.INT32, np.array([1], np.int32))], final=False
    )
    msg = stream_response_to_pb(data)
    assert msg.error_message == ""
    assert msg.infer_response.parameters["triton_final_response"].bool_param is False
    assert msg.infer_response.parameters["triton_final_response"].HasField("bool_param")
    final = stream_response_to_pb(InferResponse("m", "1", "r"))
    assert final.infer_response.parameters["triton_final_response"].bool_param is True
    head = final.infer_response
    assert (head.id, head.model_name, head.model_version) == ("r", "m", "1")
    assert len(final.infer_response.outputs) == 0


def test_stream_error_keeps_only_the_request_id() -> None:
    failed = InferResponse("m", "1", "r7", error=InvalidInput("bad thing"))
    msg = stream_response_to_pb(failed)
    assert msg.error_message == "bad thing"
    assert msg.infer_response.id == "r7"
    assert msg.infer_response.model_name == "" and not msg.infer_response.parameters
    assert stream_error_to_pb(RuntimeError("boom"), "r8").error_message == "RuntimeError: boom"
    assert stream_error_to_pb("plain text", "").error_message == "plain text"

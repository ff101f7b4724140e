"""The triton_python_backend_utils surface that model code uses."""

from __future__ import annotations

import asyncio
import importlib
import threading

import numpy as np
import pytest
import torch

from server.backends.python import pb_utils
from server.backends.python.outputs import OutputAdapter
from server.backends.python.pb_request import InferenceRequest
from server.backends.python.pb_sender import ResponseSender
from server.errors import StatusKind
from server.repository.model_config import ModelConfig
from server.scheduling.response_channel import ResponseChannel
from server.types import InferResponse
from tests.support.tensor_models import make_request

CONFIG = {
    "name": "m",
    "max_batch_size": 4,
    "input": [{"name": "IN", "data_type": "TYPE_FP32", "dims": [16]}],
    "output": [{"name": "OUT", "data_type": "TYPE_STRING", "dims": [1]}],
    "model_transaction_policy": {"decoupled": True},
}


def test_the_module_is_importable_under_tritons_name() -> None:
    pb_utils.register()
    module = importlib.import_module("triton_python_backend_utils")
    assert module is pb_utils
    for name in pb_utils.__all__:
        assert hasattr(module, name), name


def test_tensor_accessors_and_dlpack_round_trips() -> None:
    t = pb_utils.Tensor("X", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert t.name() == "X" and t.shape() == [2, 3] and t.is_cpu()
    back = torch.utils.dlpack.from_dlpack(t.to_dlpack())
    assert back.tolist() == [[0, 1, 2], [3, 4, 5]]
    from_capsule = pb_utils.Tensor.from_dlpack("Y", torch.utils.dlpack.to_dlpack(torch.ones(2)))
    from_object = pb_utils.Tensor.from_dlpack("Z", torch.full((2,), 3.0))
    np.testing.assert_array_equal(from_capsule.as_numpy(), [1, 1])
    np.testing.assert_array_equal(from_object.as_numpy(), [3, 3])
    with pytest.raises(pb_utils.TritonModelException, match="BYTES"):
        pb_utils.Tensor("S", np.array([b"a"], dtype=object)).to_dlpack()
    with pytest.raises(pb_utils.TritonModelException, match="name"):
        pb_utils.Tensor(3, np.zeros(1))  # type: ignore[arg-type]


def test_config_lookups_and_type_helpers() -> None:
    assert pb_utils.get_input_config_by_name(CONFIG, "IN")["dims"] == [16]  # type: ignore[index]
    assert pb_utils.get_output_config_by_name(CONFIG, "OUT")["data_type"] == "TYPE_STRING"  # type: ignore[index]
    assert pb_utils.get_output_config_by_name(CONFIG, "NOPE") is None
    assert pb_utils.using_decoupled_model_transaction_policy(CONFIG)
    assert not pb_utils.using_decoupled_model_transaction_policy({"name": "x"})
    assert pb_utils.triton_string_to_numpy("TYPE_FP32") is np.float32
    assert pb_utils.triton_string_to_numpy("TYPE_STRING") is np.object_
    assert pb_utils.triton_to_numpy_type(8) is np.int32 and pb_utils.numpy_to_triton_type(np.int32) == 8
    assert pb_utils.numpy_to_triton_type(np.dtype("complex64")) is None


def test_bytes_serialization_round_trips_binary() -> None:
    data = np.array([b"ab", b"", b"\x00\xff", "h\u00e9"], dtype=object)
    encoded = pb_utils.serialize_byte_tensor(data)
    assert encoded.dtype == np.uint8 and encoded[:4].tolist() == [2, 0, 0, 0]
    assert pb_utils.deserialize_bytes_tensor(encoded).tolist() == [
        b"ab",
        b"",
        b"\x00\xff",
        "h\u00e9".encode(),
    ]


def test_errors_and_responses() -> None:
    err = pb_utils.TritonError("nope", pb_utils.TritonError.UNAVAILABLE)
    assert err.message() == "nope" and err.code() == pb_utils.TritonError.UNAVAILABLE
    assert err.to_domain().kind is StatusKind.UNAVAILABLE
    assert pb_utils.TritonError("x").to_domain().kind is StatusKind.INTERNAL
    resp = pb_utils.InferenceResponse(error="plain text")
    assert resp.has_error() and resp.error().message() == "plain text"  # type: ignore[union-attr]
    out = pb_utils.Tensor("OUT", np.zeros(1))
    ok = pb_utils.InferenceResponse(output_tensors=[out], parameters={"k": 1})
    assert pb_utils.get_output_tensor_by_name(ok, "OUT") is out and ok.parameters() == '{"k": 1}'


def test_incoming_request_accessors() -> None:
    config = ModelConfig.from_dict(CONFIG)
    request = make_request(
        "m",
        {"IN": np.zeros((1, 16), np.float32)},
        "req-7",
        parameters={"sequence_id": 42, "sequence_start": True},
    )
    channel = ResponseChannel(asyncio.new_event_loop())
    sender = ResponseSender(request, channel, OutputAdapter(config), True, threading.Lock())
    wrapped = InferenceRequest.wrap(request, sender, ("OUT",))
    assert wrapped.request_id() == "req-7" and wrapped.requested_output_names() == ["OUT"]
    assert [t.name() for t in wrapped.inputs()] == ["IN"]
    assert pb_utils.get_input_tensor_by_name(wrapped, "IN").as_numpy().shape == (1, 16)  # type: ignore[union-attr]
    assert pb_utils.get_input_tensor_by_name(wrapped, "MISSING") is None
    assert (
        wrapped.correlation_id() == 42
        and wrapped.flags() == pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START
    )
    assert '"sequence_id": 42' in wrapped.parameters()
    assert wrapped.get_response_sender() is sender and not wrapped.is_cancelled()
    request.cancel.cancel()
    assert wrapped.is_cancelled() and sender.is_cancelled()
    channel.loop.close()


def test_response_sender_rules() -> None:
    config = ModelConfig.from_dict(CONFIG)
    loop = asyncio.new_event_loop()
    request = make_request("m", {"IN": np.zeros((1, 16), np.float32)})
    channel = ResponseChannel(loop)
    sender = ResponseSender(request, channel, OutputAdapter(config), True, threading.Lock())
    with pytest.raises(pb_utils.TritonModelException, match="needs a response"):
        sender.send()
    sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array(["a", "b"]))]))
    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    with pytest.raises(pb_utils.TritonModelException, match="closed"):
        sender.send(pb_utils.InferenceResponse([]))

    async def drain() -> list[InferResponse]:
        return [r async for r in channel]

    first, final = loop.run_until_complete(drain())
    loop.close()
    assert first.outputs[0].data.tolist() == [b"a", b"b"] and not first.final
    assert final.is_empty_final


def test_model_config_auto_complete_setters() -> None:
    cfg = pb_utils.ModelConfig({"name": "m", "input": [{"name": "A", "data_type": "TYPE_FP32"}]})
    cfg.add_input({"name": "A", "data_type": "TYPE_FP32", "dims": [4]})
    cfg.add_output({"name": "B", "data_type": "TYPE_INT32", "dims": [1]})
    cfg.set_max_batch_size(8)
    cfg.set_dynamic_batching()
    cfg.set_model_transaction_policy({"decoupled": True})
    d = cfg.as_dict()
    assert d["input"] == [{"name": "A", "data_type": "TYPE_FP32", "dims": [4]}] and d["max_batch_size"] == 8
    assert d["dynamic_batching"] == {} and d["model_transaction_policy"] == {"decoupled": True}
    with pytest.raises(pb_utils.TritonModelException, match="TYPE_INT64"):
        cfg.add_input({"name": "A", "data_type": "TYPE_INT64", "dims": [4]})
    with pytest.raises(pb_utils.TritonModelException, match="already says 8"):
        cfg.set_max_batch_size(2)
    with pytest.raises(pb_utils.TritonModelException, match="unknown input keys"):
        cfg.add_input({"name": "C", "datatype": "TYPE_FP32"})


def test_logger_writes_to_the_server_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="hangar.python_model"):
        pb_utils.Logger.log_info("hello")
        pb_utils.Logger.log_warn("careful")
        pb_utils.Logger.log("detail", pb_utils.LogLevel.VERBOSE)
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("INFO", "hello"), ("WARNING", "careful"), ("DEBUG", "detail"),
    ]  # fmt: skip

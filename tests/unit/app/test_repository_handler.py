"""Repository RPCs: index, explicit load (with a config override) and unload, and the mode rules."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from server.app.repository_handler import repository_parameters
from server.errors import InvalidInput
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.gen.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from tests.support.server import running_server
from tests.support.tensors import fp32
from tests.unit.app.scripted_backend import Journal, scripted_registry, write_model


def test_parameters_convert_by_oneof() -> None:
    request = pb.RepositoryModelLoadRequest()
    request.parameters["config"].string_param = "{}"
    request.parameters["file:1/model.bin"].bytes_param = b"\x00\x01"
    request.parameters["flag"].bool_param = True
    request.parameters["n"].int64_param = -3
    assert repository_parameters(request.parameters) == {
        "config": "{}", "file:1/model.bin": b"\x00\x01", "flag": True, "n": -3,
    }  # fmt: skip
    request.parameters["unset"].Clear()
    with pytest.raises(InvalidInput, match="'unset'"):
        repository_parameters(request.parameters)


def test_load_and_unload_are_refused_outside_explicit_mode(client: grpcclient.InferenceServerClient) -> None:
    for call in (client.load_model, client.unload_model):
        with pytest.raises(InferenceServerException) as info:
            call("plain")
        assert info.value.status() == "StatusCode.UNAVAILABLE"
        assert "'none'" in info.value.message()
    assert client.is_model_ready("plain")


def test_explicit_load_override_and_unload(tmp_path: Path) -> None:
    write_model(tmp_path, "m", versions=(1, 2))
    with running_server(
        tmp_path, registry=scripted_registry(Journal()), model_control_mode="explicit"
    ) as srv:
        client = grpcclient.InferenceServerClient(srv.url)
        assert not client.is_model_ready("m")
        assert [(e.name, e.version, e.state) for e in client.get_model_repository_index().models] == [
            ("m", "", "")
        ]
        client.load_model("m")
        assert client.infer("m", [fp32("IN", [1.0])]).get_response().model_version == "2"
        override = {
            "backend": "scripted", "max_batch_size": 0, "version_policy": {"specific": {"versions": [1]}},
            "input": [{"name": "IN", "data_type": "TYPE_FP32", "dims": [-1]}],
            "output": [{"name": "OUT", "data_type": "TYPE_FP32", "dims": [-1]}],
        }  # fmt: skip
        client.load_model("m", config=json.dumps(override))
        assert client.infer("m", [fp32("IN", [1.0])]).get_response().model_version == "1"
        bad = pb.RepositoryModelUnloadRequest(model_name="m")
        bad.parameters["colour"].string_param = "blue"
        with grpc.insecure_channel(srv.url) as channel, pytest.raises(grpc.RpcError) as raw:
            GRPCInferenceServiceStub(channel).RepositoryModelUnload(bad, timeout=30)
        assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'colour'" in raw.value.details()
        client.unload_model("m")
        assert not client.is_model_ready("m")
        states = {(e.version, e.state, e.reason) for e in client.get_model_repository_index().models}
        assert ("1", "UNAVAILABLE", "unloaded") in states
        with pytest.raises(InferenceServerException) as info:
            client.load_model("ghost")
        assert "ghost" in info.value.message()

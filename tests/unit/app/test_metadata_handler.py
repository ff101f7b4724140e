"""Liveness, readiness, metadata and config RPCs as a stock tritonclient sees them."""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from server import __version__
from server.app.metadata_handler import EXTENSIONS


def test_live_ready_and_model_ready(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("plain")
    assert client.is_model_ready("batched", "2")
    # Unknown models and versions answer OK with ready=false (clients expect False, not an exception).
    assert client.is_model_ready("ghost") is False
    assert client.is_model_ready("batched", "1") is False


def test_server_metadata_answers_as_triton(client: grpcclient.InferenceServerClient) -> None:
    meta = client.get_server_metadata()
    assert (meta.name, meta.version) == ("triton", "2.73.0")
    assert list(meta.extensions) == list(EXTENSIONS)
    assert f"hangar/{__version__}" in meta.extensions
    assert "model_repository(unload_dependents)" in meta.extensions


def test_model_metadata_prepends_batch_dim(client: grpcclient.InferenceServerClient) -> None:
    meta = client.get_model_metadata("batched")
    assert meta.name == "batched"
    assert list(meta.versions) == ["2"]
    assert meta.platform == "scripted"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("IN", "FP32", [-1, -1])]
    plain = client.get_model_metadata("plain")
    assert [(t.name, t.datatype, list(t.shape)) for t in plain.outputs] == [("OUT", "FP32", [-1])]


@pytest.mark.parametrize("call", ["get_model_metadata", "get_model_config"])
def test_unknown_model_metadata_is_invalid_argument(
    client: grpcclient.InferenceServerClient, call: str
) -> None:
    with pytest.raises(InferenceServerException) as info:
        getattr(client, call)("ghost")
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'ghost'" in info.value.message()


def test_model_config_round_trips(client: grpcclient.InferenceServerClient) -> None:
    config = client.get_model_config("batched").config
    assert config.name == "batched"
    assert config.max_batch_size == 4
    assert [i.name for i in config.input] == ["IN"]
    assert client.get_model_config("dec").config.model_transaction_policy.decoupled is True


def test_shared_memory_is_refused_by_name_but_unregister_all_succeeds(
    client: grpcclient.InferenceServerClient,
) -> None:
    client.unregister_system_shared_memory()
    client.unregister_cuda_shared_memory()
    assert len(client.get_system_shared_memory_status().regions) == 0
    with pytest.raises(InferenceServerException) as info:
        client.register_system_shared_memory("region-a", "/shm_key", 64)
    assert info.value.status() == "StatusCode.UNIMPLEMENTED" and "'region-a'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.register_cuda_shared_memory("region-b", b"\0" * 64, 0, 64)
    assert info.value.status() == "StatusCode.UNIMPLEMENTED" and "'region-b'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.get_cuda_shared_memory_status("region-c")
    assert "'region-c'" in info.value.message()


def test_trace_and_log_settings_need_telemetry(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.get_trace_settings()
    assert info.value.status() == "StatusCode.UNIMPLEMENTED" and "TraceSetting" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.update_log_settings({"log_verbose_level": 1})
    assert info.value.status() == "StatusCode.UNIMPLEMENTED" and "LogSettings" in info.value.message()

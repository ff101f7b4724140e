"""Explicit model control end to end: load with config and file overrides, unload, and failed loads that name
their cause while every other model keeps serving."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.gen.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from tests.support.python_models import VERSIONED_CODE, VERSIONED_CONFIG, write_python_model, write_versioned
from tests.support.server import PROJECT_ROOT, RunningServer, running_server
from tests.support.tensors import fp32

ONES = np.ones((1, 16), np.float32)
VERSIONED_JSON = {
    "backend": "python",
    "max_batch_size": 0,
    "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [-1]}],
    "output": [
        {"name": "Y", "data_type": "TYPE_FP32", "dims": [-1]},
        {"name": "VERSION", "data_type": "TYPE_INT32", "dims": [1]},
    ],
}

INIT_RAISES = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("init exploded 314")
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("explicit-repo")
    shutil.copytree(PROJECT_ROOT / "model_repo" / "add_sub", repo / "add_sub")
    write_versioned(repo, "versioned", versions=(1, 2))
    write_python_model(repo, "no_model_file", VERSIONED_CONFIG, "")
    (repo / "no_model_file" / "1" / "model.py").unlink()
    write_python_model(repo, "init_raises", VERSIONED_CONFIG, INIT_RAISES)
    write_python_model(repo, "wrong_name", 'name: "someone_else"\n' + VERSIONED_CONFIG, VERSIONED_CODE)
    write_python_model(repo, "bad_pbtxt", VERSIONED_CONFIG + "max_batch_size: [ oops\n", VERSIONED_CODE)
    return repo


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[RunningServer]:
    with running_server(repo, model_control_mode="explicit", load_models=("add_sub",)) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(server.url)
    yield c
    # Whatever the test did, the model loaded at startup still serves.
    out = c.infer("add_sub", [fp32("INPUT0", ONES), fp32("INPUT1", ONES)]).as_numpy("OUTPUT0")
    np.testing.assert_array_equal(out, ONES * 2)
    c.close()


def version_of(client: grpcclient.InferenceServerClient, model: str = "versioned") -> int:
    return int(client.infer(model, [fp32("X", [1.0])]).as_numpy("VERSION")[0])


def test_only_startup_models_are_loaded(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_model_ready("add_sub")
    assert not client.is_model_ready("versioned")
    index = {m.name: (m.version, m.state) for m in client.get_model_repository_index().models}
    assert index["versioned"] == ("", "")


def test_load_override_then_revert_then_unload(client: grpcclient.InferenceServerClient) -> None:
    client.load_model("versioned")
    assert version_of(client) == 2
    only_v1 = {**VERSIONED_JSON, "version_policy": {"specific": {"versions": [1]}}}
    client.load_model("versioned", config=json.dumps(only_v1))
    assert version_of(client) == 1 and not client.is_model_ready("versioned", "2")
    client.load_model("versioned")  # no override: back to config.pbtxt (latest version)
    assert version_of(client) == 2
    client.unload_model("versioned")
    assert not client.is_model_ready("versioned")
    rows = [
        (m.version, m.state, m.reason)
        for m in client.get_model_repository_index().models
        if m.name == "versioned"
    ]
    assert ("2", "UNAVAILABLE", "unloaded") in rows


def test_file_override_serves_the_uploaded_code(client: grpcclient.InferenceServerClient) -> None:
    code = VERSIONED_CODE.replace('self.version = int(args["model_version"])', "self.version = 77")
    files = {"file:5/model.py": code.encode()}
    client.load_model("versioned", config=json.dumps(VERSIONED_JSON), files=files)
    result = client.infer("versioned", [fp32("X", [1.0])])
    assert int(result.as_numpy("VERSION")[0]) == 77
    assert result.get_response().model_version == "5"
    client.unload_model("versioned")


@pytest.mark.parametrize(
    ("model", "params", "code", "names"),
    [
        ("versioned", {"config": "{not json"}, "StatusCode.INTERNAL", ("versioned",)),
        (
            "versioned",
            {"config": json.dumps({**VERSIONED_JSON, "name": "other"})},
            None,
            ("other", "versioned"),
        ),
        ("versioned", {"colour": "blue"}, "StatusCode.INVALID_ARGUMENT", ("colour",)),
        ("no_such_model", {}, "StatusCode.INTERNAL", ("no_such_model",)),
        ("no_model_file", {}, "StatusCode.INTERNAL", ("model.py",)),
        ("init_raises", {}, "StatusCode.INTERNAL", ("init exploded 314",)),
        ("wrong_name", {}, None, ("someone_else", "wrong_name")),
        ("bad_pbtxt", {}, None, ("config.pbtxt",)),
    ],
)
def test_failed_loads_name_their_cause(
    client: grpcclient.InferenceServerClient,
    server: RunningServer,
    model: str,
    params: dict[str, str],
    code: str | None,
    names: tuple[str, ...],
) -> None:
    config = params.pop("config", None) if "config" in params else None
    with pytest.raises(InferenceServerException) as info:
        if params:
            _load_with_raw_params(server.url, model, params)
        else:
            client.load_model(model, config=config)
    if code is not None:
        assert info.value.status() == code, info.value
    else:
        assert info.value.status() in ("StatusCode.INTERNAL", "StatusCode.INVALID_ARGUMENT"), info.value
    for name in names:
        assert name in info.value.message(), (name, info.value.message())
    assert not client.is_model_ready(model)
    if model == "init_raises":
        (row,) = [m for m in client.get_model_repository_index().models if m.name == model]
        assert row.state == "UNAVAILABLE" and "init exploded 314" in row.reason


def _load_with_raw_params(url: str, model: str, params: dict[str, str]) -> None:
    """tritonclient only sends `config` and `file:` keys; other keys go through the raw stub."""
    request = pb.RepositoryModelLoadRequest(model_name=model)
    for key, value in params.items():
        request.parameters[key].string_param = value
    with grpc.insecure_channel(url) as channel:
        try:
            GRPCInferenceServiceStub(channel).RepositoryModelLoad(request, timeout=60)
        except grpc.RpcError as e:
            raise InferenceServerException(msg=e.details(), status=str(e.code())) from None

"""Every core RPC through stock tritonclient (sync and asyncio) against a real server with Python models."""

from __future__ import annotations

import asyncio
import queue
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.gen.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from tests.support.python_models import (
    ALL_DATATYPES,
    write_cancel_watcher,
    write_identity_all_types,
    write_versioned,
)
from tests.support.server import PROJECT_ROOT, RunningServer, running_server, wait_until
from tests.support.tensors import fp32, infer_input

WAIT_S = 60.0
MODEL_REPO = PROJECT_ROOT / "model_repo"


@pytest.fixture(scope="module")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cancel-markers")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, markers: Path) -> Iterator[RunningServer]:
    repo = tmp_path_factory.mktemp("core-repo")
    for name in ("add_sub", "streaming"):
        shutil.copytree(MODEL_REPO / name, repo / name)
    write_identity_all_types(repo)
    versioned = write_versioned(repo, "versioned", versions=(1, 2))
    with (versioned / "config.pbtxt").open("a") as f:
        f.write("version_policy: { all: {} }\n")
    write_cancel_watcher(repo, "watcher", markers)
    write_cancel_watcher(repo, "watcher_decoupled", markers, decoupled=True)
    with running_server(repo) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(server.url)
    yield c
    c.close()


def add_sub_inputs() -> list[grpcclient.InferInput]:
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    return [fp32("INPUT0", a), fp32("INPUT1", np.ones((1, 16), np.float32))]


def test_health_metadata_config_index_and_statistics(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("add_sub") and client.is_model_ready("versioned", "1")
    assert client.is_model_ready("missing") is False
    meta = client.get_server_metadata()
    assert meta.name == "triton" and any(e.startswith("hangar/") for e in meta.extensions)
    model = client.get_model_metadata("add_sub")
    assert model.platform == "python"
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("INPUT0", "FP32", [-1, 16]), ("INPUT1", "FP32", [-1, 16]),
    ]  # fmt: skip
    assert sorted(client.get_model_metadata("versioned").versions) == ["1", "2"]
    config = client.get_model_config("add_sub").config
    assert config.max_batch_size == 8 and config.backend == "python"
    index = {(m.name, m.version): m.state for m in client.get_model_repository_index().models}
    assert index[("add_sub", "1")] == "READY" and index[("versioned", "2")] == "READY"
    result = client.infer("add_sub", add_sub_inputs())
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.arange(16, dtype=np.float32)[None] - 1)
    (stats,) = client.get_inference_statistics("add_sub").model_stats
    assert stats.inference_stats.success.count >= 1 and stats.execution_count >= 1


def _all_types_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out: dict[str, np.ndarray] = {}
    for dt in ALL_DATATYPES:
        if dt == "BOOL":
            out[dt] = np.array([True, False, True])
        elif dt == "BYTES":
            out[dt] = np.array([b"plain", b"nul\x00inside", bytes(range(256)), b""], dtype=np.object_)
        elif dt == "BF16":
            out[dt] = np.array([1.5, -2.25, 3.0e38], dtype=ml_dtypes.bfloat16)
        elif dt.startswith("FP"):
            out[dt] = rng.standard_normal(5).astype(
                {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[dt]
            )
        else:
            info = np.iinfo(dt.lower())
            out[dt] = np.array([info.min, 0, info.max], dtype=dt.lower())
    return out


def test_every_datatype_round_trips(client: grpcclient.InferenceServerClient) -> None:
    arrays = _all_types_arrays()
    result = client.infer("identity", [infer_input(f"IN_{dt}", a) for dt, a in arrays.items()])
    for dt, expected in arrays.items():
        got = result.as_numpy(f"OUT_{dt}")
        assert got is not None, dt
        if dt == "BF16":
            assert got.view(np.uint16).tolist() == expected.view(np.uint16).tolist()
        else:
            assert got.tolist() == expected.tolist(), dt
        output = next(o for o in result.get_response().outputs if o.name == f"OUT_{dt}")
        assert output.datatype == dt


TYPED_FIELDS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


def test_typed_contents_are_answered_in_raw_form(server: RunningServer) -> None:
    """Requests may use typed `contents`; Triton (and Hangar) always answer in raw_output_contents."""
    request = pb.ModelInferRequest(model_name="identity")
    arrays = _all_types_arrays()
    for dt in ALL_DATATYPES:
        field = TYPED_FIELDS.get(dt)
        # FP16 and BF16 have no typed field and raw cannot be mixed with typed: send them empty.
        values = arrays[dt].tolist() if field else []
        tensor = request.inputs.add(name=f"IN_{dt}", datatype=dt, shape=[len(values)])
        tensor.contents.SetInParent()
        if field:
            getattr(tensor.contents, field).extend(values)
    with grpcclient.grpc.insecure_channel(server.url) as channel:
        reply = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=WAIT_S)
    assert len(reply.raw_output_contents) == len(ALL_DATATYPES)
    raw = {o.name: reply.raw_output_contents[i] for i, o in enumerate(reply.outputs)}
    assert np.frombuffer(raw["OUT_INT8"], dtype=np.int8).tolist() == arrays["INT8"].tolist()
    assert np.frombuffer(raw["OUT_UINT64"], dtype=np.uint64).tolist() == arrays["UINT64"].tolist()
    assert raw["OUT_BYTES"] == b"".join(len(b).to_bytes(4, "little") + b for b in arrays["BYTES"])


def test_specific_and_default_versions(client: grpcclient.InferenceServerClient) -> None:
    x = [fp32("X", [1.0])]
    assert client.infer("versioned", x, model_version="1").as_numpy("VERSION").tolist() == [1]
    assert client.infer("versioned", x, model_version="2").as_numpy("VERSION").tolist() == [2]
    default = client.infer("versioned", x)
    assert default.as_numpy("VERSION").tolist() == [2] and default.get_response().model_version == "2"


def test_oversized_message_round_trips(client: grpcclient.InferenceServerClient) -> None:
    big = np.arange(6 * 1024 * 1024, dtype=np.float32)  # 24 MiB, beyond grpcio's 4 MiB default
    result = client.infer("versioned", [fp32("X", big)])
    np.testing.assert_array_equal(result.as_numpy("Y"), big)


def _stream_collect(
    client: grpcclient.InferenceServerClient, sends: list[dict[str, Any]], n: int
) -> list[Any]:
    items: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: items.put(error or result))
    for kw in sends:
        client.async_stream_infer("streaming", **kw)
    out = [items.get(timeout=WAIT_S) for _ in range(n)]
    client.stop_stream()
    return out


def _streaming_inputs(n: int, delay_ms: int = 0) -> list[grpcclient.InferInput]:
    return [
        infer_input("IN", np.array([n], np.int32)),
        infer_input("DELAY_MS", np.array([delay_ms], np.int32)),
    ]


def test_decoupled_streaming_sync(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("streaming", _streaming_inputs(1))
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    got = _stream_collect(
        client,
        [{"inputs": _streaming_inputs(3, 30), "request_id": "slow", "enable_empty_final_response": True},
         {"inputs": _streaming_inputs(2), "request_id": "fast"}],
        6,
    )  # fmt: skip
    assert all(not isinstance(r, Exception) for r in got), got
    rows = [(r.get_response().id, r.get_response().parameters["triton_final_response"].bool_param,
             None if not r.get_response().outputs else int(r.as_numpy("OUT")[0])) for r in got]  # fmt: skip
    assert [x for x in rows if x[0] == "slow"] == [("slow", False, 0), ("slow", False, 1), ("slow", False, 2),
                                                   ("slow", True, None)]  # fmt: skip
    # Without the opt-in the flags-only final is not sent at all.
    assert [x for x in rows if x[0] == "fast"] == [("fast", False, 0), ("fast", False, 1)]


def test_async_client_unary_and_stream(server: RunningServer) -> None:
    async def main() -> tuple[np.ndarray, list[int]]:
        client = aioclient.InferenceServerClient(server.url)
        try:
            assert await client.is_server_ready()
            result = await client.infer("add_sub", add_sub_inputs())

            async def requests() -> Any:
                yield {"model_name": "streaming", "inputs": _streaming_inputs(3), "request_id": "a",
                       "enable_empty_final_response": True}  # fmt: skip

            values = []
            async for response, error in client.stream_infer(requests()):
                assert error is None, error
                if response.get_response().parameters["triton_final_response"].bool_param:
                    break
                values.append(int(response.as_numpy("OUT")[0]))
            return result.as_numpy("OUTPUT0"), values
        finally:
            await client.close()

    out0, values = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    np.testing.assert_array_equal(out0, np.arange(16, dtype=np.float32)[None] + 1)
    assert values == [0, 1, 2]


def test_unary_cancel_reaches_is_cancelled(client: grpcclient.InferenceServerClient, markers: Path) -> None:
    errors: queue.Queue[Any] = queue.Queue()
    call = client.async_infer(
        "watcher", [fp32("X", [1.0])], callback=lambda result, error: errors.put(error), request_id="unary-1"
    )
    wait_until(lambda: (markers / "started-unary-1").exists(), WAIT_S, what="the request to start")
    call.cancel()
    assert errors.get(timeout=WAIT_S).status() == "StatusCode.CANCELLED"
    wait_until(lambda: (markers / "unary-1").exists(), WAIT_S, what="is_cancelled() in the Python model")
    assert client.is_model_ready("watcher")


@pytest.mark.parametrize("model", ["watcher", "watcher_decoupled"])
def test_stream_cancel_reaches_is_cancelled(
    client: grpcclient.InferenceServerClient, markers: Path, model: str
) -> None:
    request_id = f"stream-{model}"
    client.start_stream(callback=lambda result, error: None)
    client.async_stream_infer(model, [fp32("X", [1.0])], request_id=request_id)
    wait_until(lambda: (markers / f"started-{request_id}").exists(), WAIT_S, what="the request to start")
    client.stop_stream(cancel_requests=True)
    wait_until(lambda: (markers / request_id).exists(), WAIT_S, what="is_cancelled() in the Python model")

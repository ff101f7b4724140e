"""OnnxRuntimeBackend on the add_sub ONNX model: batching, outputs, auto-complete and load failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from builders.onnx_example import build_add_sub_onnx
from server.backends.onnxruntime.backend import OnnxRuntimeBackend
from server.backends.onnxruntime.session import run_function
from server.errors import ConfigError, LoadError
from server.repository.model_config import ModelConfig
from tests.support.tensor_models import MODEL_REPO, load_backend, make_request, outputs_of, run_requests


@pytest.fixture
def add_sub_dir(tmp_path: Path) -> Path:
    """The example's config.pbtxt from model_repo, with a freshly built model.onnx."""
    model_dir = tmp_path / "add_sub_onnx"
    model_dir.mkdir()
    shutil.copy(MODEL_REPO / "add_sub_onnx" / "config.pbtxt", model_dir / "config.pbtxt")
    build_add_sub_onnx(model_dir / "1" / "model.onnx")
    return model_dir


def pair(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "INPUT0": rng.random((rows, 16), dtype=np.float32),
        "INPUT1": rng.random((rows, 16), dtype=np.float32),
    }


def test_concurrent_requests_are_batched_and_split_back(add_sub_dir: Path) -> None:
    backend = load_backend(add_sub_dir)
    assert isinstance(backend, OnnxRuntimeBackend)
    inputs = [pair(rows, i) for i, rows in enumerate((1, 3, 2, 1, 1))]
    try:
        results = run_requests(
            backend, *(make_request("add_sub_onnx", x, str(i)) for i, x in enumerate(inputs))
        )
        stats = backend.spec.stats.snapshot()
    finally:
        backend.unload()
    for i, (x, [resp]) in enumerate(zip(inputs, results, strict=True)):
        assert resp.id == str(i) and resp.final
        out = outputs_of(resp)
        np.testing.assert_allclose(out["OUTPUT0"], x["INPUT0"] + x["INPUT1"])
        np.testing.assert_allclose(out["OUTPUT1"], x["INPUT0"] - x["INPUT1"])
    assert stats.pending == 0
    assert sum(size * b.compute_infer.count for size, b in stats.batches.items()) == 8


def test_only_requested_outputs_are_returned(add_sub_dir: Path) -> None:
    backend = load_backend(add_sub_dir)
    try:
        [[resp]] = run_requests(backend, make_request("add_sub_onnx", pair(1, 0), outputs=("OUTPUT1",)))
    finally:
        backend.unload()
    assert list(outputs_of(resp)) == ["OUTPUT1"]


@pytest.mark.parametrize(("max_batch_size", "dims"), [(8, (16,)), (0, (-1, 16))])
def test_auto_complete_reads_inputs_and_outputs_from_the_graph(
    add_sub_dir: Path, max_batch_size: int, dims: tuple[int, ...]
) -> None:
    bare = ModelConfig.from_dict(
        {"name": "add_sub_onnx", "platform": "onnxruntime_onnx", "max_batch_size": max_batch_size}
    )
    completed = OnnxRuntimeBackend.auto_complete_config(bare, add_sub_dir)
    assert [(t.name, t.data_type.value, t.dims) for t in completed.inputs] == [
        ("INPUT0", "FP32", dims), ("INPUT1", "FP32", dims),
    ]  # fmt: skip
    assert [t.name for t in completed.outputs] == ["OUTPUT0", "OUTPUT1"]


def test_missing_and_corrupt_model_files_are_load_errors_naming_the_path(add_sub_dir: Path) -> None:
    model = add_sub_dir / "1" / "model.onnx"
    model.unlink()
    with pytest.raises(LoadError, match="not found") as missing:
        load_backend(add_sub_dir)
    assert str(model) in str(missing.value)
    model.write_bytes(b"this is not protobuf")
    with pytest.raises(LoadError, match="onnxruntime cannot load") as corrupt:
        load_backend(add_sub_dir)
    assert str(model) in str(corrupt.value)


def test_config_that_disagrees_with_the_graph_fails_to_load(add_sub_dir: Path) -> None:
    text = (add_sub_dir / "config.pbtxt").read_text()
    (add_sub_dir / "config.pbtxt").write_text(
        text.replace('name: "OUTPUT1", data_type: TYPE_FP32', 'name: "OUTPUT1", data_type: TYPE_FP64')
    )
    with pytest.raises(LoadError, match=r"OUTPUT1.*TYPE_FP64"):
        load_backend(add_sub_dir)
    (add_sub_dir / "config.pbtxt").write_text(text.replace('"INPUT1"', '"INPUT9"'))
    with pytest.raises(LoadError, match=r"INPUT9.*is not in"):
        load_backend(add_sub_dir)


def test_unknown_parameters_are_config_errors(add_sub_dir: Path) -> None:
    with (add_sub_dir / "config.pbtxt").open("a") as f:
        f.write('parameters { key: "intra_op_threads" value: { string_value: "2" } }\n')
    with pytest.raises(ConfigError, match="intra_op_threads"):
        load_backend(add_sub_dir)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA"
)
def test_gpu_instances_need_a_cuda_build(add_sub_dir: Path) -> None:
    text = (add_sub_dir / "config.pbtxt").read_text()
    (add_sub_dir / "config.pbtxt").write_text(text.replace("KIND_CPU", "KIND_GPU"))
    with pytest.raises(LoadError, match=r"KIND_GPU.*CUDAExecutionProvider"):
        load_backend(add_sub_dir)


def test_string_tensors_round_trip_as_bytes(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["S"], ["T"])],
        "strings",
        [helper.make_tensor_value_info("S", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("T", TensorProto.STRING, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (tmp_path / "strings" / "1").mkdir(parents=True)
    (tmp_path / "strings" / "1" / "model.onnx").write_bytes(model.SerializeToString())
    config = ModelConfig.from_dict({"name": "strings", "backend": "onnxruntime"})
    backend = load_backend(tmp_path / "strings", config=config)
    try:
        data = np.array(["h\u00e9".encode(), b"x"], dtype=object)
        [[resp]] = run_requests(backend, make_request("strings", {"S": data}))
    finally:
        backend.unload()
    assert outputs_of(resp)["T"].tolist() == ["h\u00e9".encode(), b"x"]


def test_cpu_sessions_run_through_the_binding_with_the_same_results(add_sub_dir: Path) -> None:
    session = ort.InferenceSession(str(add_sub_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    run = run_function(session)
    assert run != session.run  # the binding's run, without the Python method's per-call checks
    feeds = {"INPUT0": np.arange(32, dtype=np.float32).reshape(2, 16), "INPUT1": np.ones((2, 16), np.float32)}
    ours, theirs = run(["OUTPUT1", "OUTPUT0"], feeds, None), session.run(["OUTPUT1", "OUTPUT0"], feeds)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


class GpuSession:
    """What run_function reads of a session with a GPU provider (none can be made on a CPU build)."""

    def __init__(self) -> None:
        self._sess = object()

    def get_providers(self) -> list[str]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray], options: object = None) -> list[str]:
        return ["public run"]


def test_sessions_with_a_gpu_provider_keep_the_public_run_and_its_fallback() -> None:
    session = GpuSession()
    assert run_function(session)([], {}, None) == ["public run"]  # type: ignore[arg-type]

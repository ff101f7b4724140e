"""Warmup samples: request construction from zero / random / file data, and running them."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.backends.base import Backend
from server.errors import ConfigError, LoadError
from server.repository.model_config import ModelConfig
from server.repository.warmup import run_warmup, warmup_requests
from server.types import DataType, InferRequest, InferResponse
from tests.unit.repository.model_dirs import run


def _config(samples: list[dict[str, Any]], max_batch_size: int = 0) -> ModelConfig:
    return ModelConfig(name="m", backend="x", max_batch_size=max_batch_size, model_warmup=tuple(samples))


def test_zero_and_random_data_have_the_configured_type_and_shape(tmp_path: Path) -> None:
    sample = {
        "name": "s",
        "inputs": {
            "ids": {"data_type": "TYPE_INT32", "dims": ["2", "3"], "zero_data": True},
            "x": {"data_type": "TYPE_FP16", "dims": ["4"], "random_data": True},
            "text": {"data_type": "TYPE_STRING", "dims": ["1"], "zero_data": True},
            "flag": {"data_type": "TYPE_BOOL", "dims": ["1"], "random_data": True},
            "bf": {"data_type": "TYPE_BF16", "dims": ["2"], "random_data": True},
        },
    }
    [(requests, count)] = warmup_requests(_config([sample]), tmp_path, 1)
    assert count == 1 and len(requests) == 1
    inputs = requests[0].inputs
    assert inputs["ids"].datatype is DataType.INT32
    assert inputs["ids"].data.shape == (2, 3) and not inputs["ids"].data.any()
    assert inputs["x"].data.dtype == np.float16 and inputs["x"].data.shape == (4,)
    assert inputs["text"].data.tolist() == [b""]
    assert inputs["flag"].data.dtype == np.bool_
    assert inputs["bf"].data.dtype == np.uint16
    assert requests[0].model_version == "1"


def test_batching_models_get_batch_size_requests_of_batch_one(tmp_path: Path) -> None:
    sample = {
        "name": "b",
        "batch_size": 3,
        "count": 2,
        "inputs": {"x": {"data_type": "TYPE_FP32", "dims": ["5"], "zero_data": True}},
    }
    [(requests, count)] = warmup_requests(_config([sample], max_batch_size=4), tmp_path, 2)
    assert count == 2
    assert [r.inputs["x"].data.shape for r in requests] == [(1, 5)] * 3


def test_input_data_file_is_read_from_the_warmup_dir(tmp_path: Path) -> None:
    (tmp_path / "warmup").mkdir()
    np.arange(6, dtype=np.int64).tofile(tmp_path / "warmup" / "ids.bin")
    strings = b"".join(struct.pack("<I", len(s)) + s for s in (b"hi", b"there"))
    (tmp_path / "warmup" / "text.bin").write_bytes(strings)
    sample = {
        "inputs": {
            "ids": {"data_type": "TYPE_INT64", "dims": ["2", "3"], "input_data_file": "ids.bin"},
            "text": {"data_type": "TYPE_STRING", "dims": ["2"], "input_data_file": "text.bin"},
        }
    }
    [(requests, _)] = warmup_requests(_config([sample]), tmp_path, 1)
    assert requests[0].inputs["ids"].data.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert requests[0].inputs["text"].data.tolist() == [b"hi", b"there"]


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"x": {"data_type": "TYPE_FP32", "dims": ["2"], "input_data_file": "short.bin"}}, "needs 8"),
        ({"x": {"data_type": "TYPE_FP32", "dims": ["2"], "input_data_file": "../../etc/passwd"}}, "outside"),
        (
            {"x": {"data_type": "TYPE_FP32", "dims": ["2"], "input_data_file": "missing.bin"}},
            "cannot be read",
        ),
        ({"x": {"data_type": "TYPE_FP32", "dims": ["-1"], "zero_data": True}}, "positive"),
        ({"x": {"data_type": "TYPE_FP32", "dims": ["2"]}}, "exactly one"),
        ({"x": {"data_type": "TYPE_FP32", "dims": ["2"], "zero_data": True, "shape": [1]}}, "unknown keys"),
        ({"x": {"data_type": "TYPE_NOPE", "dims": ["2"], "zero_data": True}}, "TYPE_NOPE"),
    ],
)
def test_malformed_samples_are_config_errors(tmp_path: Path, inputs: dict, match: str) -> None:
    (tmp_path / "warmup").mkdir()
    (tmp_path / "warmup" / "short.bin").write_bytes(b"\0" * 4)
    with pytest.raises(ConfigError, match=match):
        warmup_requests(_config([{"name": "s", "inputs": inputs}]), tmp_path, 1)


def test_unknown_sample_key_and_oversized_batch_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        warmup_requests(_config([{"name": "s", "repeat": 2}]), tmp_path, 1)
    with pytest.raises(ConfigError, match="batch_size 8"):
        warmup_requests(_config([{"name": "s", "batch_size": 8}], max_batch_size=4), tmp_path, 1)


class _Recorder(Backend):
    def __init__(self, fail: bool = False) -> None:
        self.requests: list[InferRequest] = []
        self.fail = fail

    def load(self) -> None:
        pass

    async def infer(self, request: InferRequest) -> AsyncIterator[InferResponse]:
        self.requests.append(request)
        if self.fail:
            yield InferResponse("m", "1", request.id, error=RuntimeError("bad input"))
            return
        yield InferResponse("m", "1", request.id, final=False)
        yield InferResponse("m", "1", request.id)


def test_run_warmup_sends_every_sample_count_times(tmp_path: Path) -> None:
    samples = [
        {
            "name": "a",
            "count": 3,
            "inputs": {"x": {"data_type": "TYPE_FP32", "dims": ["1"], "zero_data": True}},
        },
        {"name": "b", "batch_size": 2, "inputs": {}},
    ]
    backend = _Recorder()
    run(run_warmup(backend, _config(samples, max_batch_size=2), tmp_path, 1))
    assert [r.id for r in backend.requests] == ["warmup-a-0"] * 3 + ["warmup-b-0", "warmup-b-1"]


def test_a_failing_warmup_is_a_load_error_with_the_reason(tmp_path: Path) -> None:
    backend = _Recorder(fail=True)
    with pytest.raises(LoadError, match="bad input"):
        run(run_warmup(backend, _config([{"name": "a"}]), tmp_path, 1))
    with pytest.raises(LoadError, match="invalid model_warmup"):
        run(run_warmup(backend, _config([{"name": "a", "nope": 1}]), tmp_path, 1))

"""ExecutorConfig from parameters, the engine dir's limits, and the lazy import of tensorrt_llm."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from server.backends.tensorrtllm.bindings import (
    INSTALL_HINT,
    EngineInfo,
    executor_config,
    import_executor_module,
)
from server.backends.tensorrtllm.parameters import TensorRTLLMParameters
from server.errors import LoadError
from tests.support.trtllm_executor import fake_tensorrt_llm, write_engine_dir


@pytest.fixture
def trt(tmp_path: Path) -> Iterator[ModuleType]:
    with fake_tensorrt_llm(tmp_path) as module:
        yield module


def test_import_goes_through_the_package(trt: ModuleType) -> None:
    assert import_executor_module() is trt


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_llm") is not None, reason="tensorrt_llm is installed")
def test_missing_package_is_a_load_error_with_the_install_hint() -> None:
    with pytest.raises(LoadError) as e:
        import_executor_module()
    assert str(e.value) == INSTALL_HINT
    assert "tensorrt-llm==1.2" in INSTALL_HINT


def test_executor_config_maps_every_knob(trt: ModuleType) -> None:
    p = TensorRTLLMParameters(
        max_beam_width=2,
        max_tokens_in_paged_kv_cache=2560,
        kv_cache_free_gpu_mem_fraction=0.5,
        enable_kv_cache_reuse=True,
        batch_scheduler_policy="max_utilization",
        enable_chunked_context=True,
        max_attention_window_size=(1024,),
        exclude_input_in_output=True,
        iter_stats_max_iterations=50,
        gpu_device_ids=(0, 1),
        decoding_mode="top_p",
        cuda_graph_mode=True,
        cuda_graph_cache_size=4,
        lora_cache_gpu_memory_fraction=0.1,
    )
    c = executor_config(trt, p)
    assert c.max_beam_width == 2
    assert c.batching_type is trt.BatchingType.INFLIGHT
    assert c.scheduler_config.capacity_scheduler_policy is trt.CapacitySchedulerPolicy.MAX_UTILIZATION
    kv = c.kv_cache_config
    assert (kv.max_tokens, kv.free_gpu_memory_fraction, kv.enable_block_reuse) == (2560, 0.5, True)
    assert kv.max_attention_window == [1024]
    assert c.enable_chunked_context and c.iter_stats_max_iterations == 50
    assert c.parallel_config.device_ids == [0, 1]
    assert c.decoding_config.decoding_mode.name == "TopP"
    knobs = c.extended_runtime_perf_knob_config
    assert (knobs.multi_block_mode, knobs.cuda_graph_mode, knobs.cuda_graph_cache_size) == (True, True, 4)
    assert c.peft_cache_config.device_cache_percent == 0.1


def test_defaults_leave_reuse_off_and_batching_in_flight(trt: ModuleType) -> None:
    c = executor_config(trt, TensorRTLLMParameters())
    assert c.kv_cache_config.enable_block_reuse is False  # the Executor's own default is True
    assert c.scheduler_config.capacity_scheduler_policy is trt.CapacitySchedulerPolicy.GUARANTEED_NO_EVICT
    assert c.parallel_config is None and c.decoding_config is None
    assert (
        executor_config(trt, TensorRTLLMParameters(gpt_model_type="V1")).batching_type
        is trt.BatchingType.STATIC
    )


def test_engine_info(tmp_path: Path) -> None:
    info = EngineInfo.read(write_engine_dir(tmp_path / "e", vocab_size=300, max_seq_len=256))
    assert (info.vocab_size, info.max_seq_len, info.max_input_len) == (300, 256, 128)
    with pytest.raises(LoadError, match="no readable TensorRT-LLM engine config"):
        EngineInfo.read(tmp_path / "missing")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"architecture": "x"}))
    with pytest.raises(LoadError, match="written by trtllm-build"):
        EngineInfo.read(tmp_path / "odd")

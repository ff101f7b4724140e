"""The lazily imported Executor bindings, the ExecutorConfig built from parameters, the engine's limits."""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from server.backends.tensorrtllm.parameters import TensorRTLLMParameters
from server.errors import LoadError

INSTALL_HINT = (
    "tensorrt_llm is not installed: install 'hangar[tensorrt-llm]' (tensorrt-llm==1.2.*, from NVIDIA's "
    "package index; it needs Linux x86_64/aarch64, CUDA 13 and an NVIDIA GPU)"
)


def import_executor_module() -> ModuleType:
    """`tensorrt_llm.bindings.executor`, imported only when a tensorrtllm model loads.

    Raises:
        LoadError: the package is absent, or present but does not import (e.g. no GPU driver here).
    """
    if importlib.util.find_spec("tensorrt_llm") is None:
        raise LoadError(INSTALL_HINT)
    try:
        return importlib.import_module("tensorrt_llm.bindings.executor")
    except Exception as e:  # an ImportError, or an OSError from a missing libcuda / libnvidia-ml
        raise LoadError(f"tensorrt_llm is installed but does not import here: {type(e).__name__}: {e}") from e


@dataclass(frozen=True)
class EngineInfo:
    """What Hangar needs from the engine directory's config.json (written by trtllm-build)."""

    vocab_size: int
    max_seq_len: int
    max_input_len: int | None

    @classmethod
    def read(cls, engine_dir: Path) -> EngineInfo:
        """Raises LoadError when config.json is missing or lacks the sizes."""
        path = engine_dir / "config.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise LoadError(f"no readable TensorRT-LLM engine config at {path}: {e}") from e
        pretrained = data.get("pretrained_config", {})
        build = data.get("build_config", {})
        vocab = pretrained.get("vocab_size")
        seq = build.get("max_seq_len") or pretrained.get("max_position_embeddings")
        if not isinstance(vocab, int) or not isinstance(seq, int):
            raise LoadError(
                f"{path} lacks pretrained_config.vocab_size or build_config.max_seq_len; is it an engine "
                f"directory written by trtllm-build?"
            )
        max_input = build.get("max_input_len")
        return cls(
            vocab_size=vocab, max_seq_len=seq, max_input_len=max_input if isinstance(max_input, int) else None
        )


_POLICIES = {"guaranteed_no_evict": "GUARANTEED_NO_EVICT", "max_utilization": "MAX_UTILIZATION"}
_DECODING = {"top_k": "TopK", "top_p": "TopP", "top_k_top_p": "TopKTopP", "beam_search": "BeamSearch"}


def kv_cache_config(trt: ModuleType, p: TensorRTLLMParameters) -> Any:
    return trt.KvCacheConfig(
        enable_block_reuse=p.enable_kv_cache_reuse,
        max_tokens=p.max_tokens_in_paged_kv_cache,
        max_attention_window=list(p.max_attention_window_size) or None,
        sink_token_length=p.sink_token_length,
        free_gpu_memory_fraction=p.kv_cache_free_gpu_mem_fraction,
        host_cache_size=p.kv_cache_host_memory_bytes,
        onboard_blocks=p.kv_cache_onboard_blocks,
        cross_kv_cache_fraction=p.cross_kv_cache_fraction,
    )


def _perf_knobs(trt: ModuleType, p: TensorRTLLMParameters) -> Any:
    knobs = trt.ExtendedRuntimePerfKnobConfig(
        multi_block_mode=p.multi_block_mode, enable_context_fmha_fp32_acc=p.enable_context_fmha_fp32_acc
    )
    # The constructor takes only the first two; the CUDA-graph knobs are properties.
    knobs.cuda_graph_mode = p.cuda_graph_mode
    knobs.cuda_graph_cache_size = p.cuda_graph_cache_size
    return knobs


def executor_config(trt: ModuleType, p: TensorRTLLMParameters) -> Any:
    """The ExecutorConfig the Triton backend would build from the same parameters."""
    batching = trt.BatchingType.STATIC if p.batching_type == "v1" else trt.BatchingType.INFLIGHT
    policy = getattr(trt.CapacitySchedulerPolicy, _POLICIES[p.batch_scheduler_policy])
    kwargs: dict[str, Any] = {
        "max_beam_width": p.max_beam_width,
        "scheduler_config": trt.SchedulerConfig(policy),
        "kv_cache_config": kv_cache_config(trt, p),
        "enable_chunked_context": p.enable_chunked_context,
        "normalize_log_probs": p.normalize_log_probs,
        "batching_type": batching,
        "gpu_weights_percent": p.gpu_weights_percent,
        "recv_poll_period_ms": p.recv_poll_period_ms,
        "extended_runtime_perf_knob_config": _perf_knobs(trt, p),
        "peft_cache_config": trt.PeftCacheConfig(
            optimal_adapter_size=p.lora_cache_optimal_adapter_size,
            max_adapter_size=p.lora_cache_max_adapter_size,
            device_cache_percent=p.lora_cache_gpu_memory_fraction,
            host_cache_size=p.lora_cache_host_memory_bytes,
        ),
    }
    if p.iter_stats_max_iterations is not None:
        kwargs["iter_stats_max_iterations"] = p.iter_stats_max_iterations
    if p.request_stats_max_iterations is not None:
        kwargs["request_stats_max_iterations"] = p.request_stats_max_iterations
    if p.gpu_device_ids or p.participant_ids or p.num_nodes is not None:
        kwargs["parallel_config"] = trt.ParallelConfig(
            device_ids=list(p.gpu_device_ids) or None,
            participant_ids=list(p.participant_ids) or None,
            num_nodes=p.num_nodes,
        )
    if p.decoding_mode:
        mode = getattr(trt.DecodingMode, _DECODING[p.decoding_mode.lower()])()
        kwargs["decoding_config"] = trt.DecodingConfig(decoding_mode=mode)
    if p.enable_trt_overlap:
        kwargs["enable_trt_overlap"] = True
    return trt.ExecutorConfig(**kwargs)

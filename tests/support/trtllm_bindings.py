"""The configuration and request classes of the `tensorrt_llm.bindings.executor` stand-in.

Names, defaults and positional limits follow TensorRT-LLM 1.2's nanobind bindings, so a wrong keyword
fails here as it would against the real package. See tests/support/trtllm_executor.py.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar


class _Binding:
    """Keyword construction checked like the nanobind bindings: unknown names raise TypeError."""

    _fields: ClassVar[dict[str, Any]] = {}
    _positional: ClassVar[int] = 99

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        name = type(self).__name__
        if len(args) > min(self._positional, len(self._fields)):
            raise TypeError(f"{name}() takes at most {self._positional} positional arguments")
        values = dict(self._fields)
        values.update(zip(self._fields, args, strict=False))
        for key, value in kwargs.items():
            if key not in self._fields:
                raise TypeError(f"{name}() got an unexpected keyword argument '{key}'")
            values[key] = value
        self.__dict__.update(values)


class BatchingType(enum.Enum):
    STATIC = 0
    INFLIGHT = 1


class CapacitySchedulerPolicy(enum.Enum):
    MAX_UTILIZATION = 0
    GUARANTEED_NO_EVICT = 1
    STATIC_BATCH = 2


class CommunicationType(enum.Enum):
    MPI = 0


class CommunicationMode(enum.Enum):
    LEADER = 0
    ORCHESTRATOR = 1


class DecodingMode:
    def __init__(self, name: str) -> None:
        self.name = name

    for _mode in ("Auto", "TopK", "TopP", "TopKTopP", "BeamSearch", "Medusa", "Lookahead", "Eagle"):
        locals()[_mode] = staticmethod(lambda _n=_mode: DecodingMode(_n))


class KvCacheConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        enable_block_reuse=True, max_tokens=None, max_attention_window=None, sink_token_length=None,
        free_gpu_memory_fraction=None, host_cache_size=None, onboard_blocks=True,
        cross_kv_cache_fraction=None, secondary_offload_min_priority=None, event_buffer_max_size=0,
        enable_partial_reuse=True, copy_on_partial_reuse=True, use_uvm=False, runtime_defaults=None,
    )  # fmt: skip
    _positional = 10


class SchedulerConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        capacity_scheduler_policy=CapacitySchedulerPolicy.GUARANTEED_NO_EVICT,
        context_chunking_policy=None, dynamic_batch_config=None,
    )  # fmt: skip


class ExtendedRuntimePerfKnobConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(multi_block_mode=True, enable_context_fmha_fp32_acc=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cuda_graph_mode = False
        self.cuda_graph_cache_size = 0


class PeftCacheConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        num_host_module_layer=0, num_device_module_layer=0, optimal_adapter_size=8, max_adapter_size=64,
        num_put_workers=1, num_ensure_workers=1, num_copy_streams=1, max_pages_per_block_host=24,
        max_pages_per_block_device=8, device_cache_percent=None, host_cache_size=None, lora_prefetch_dir=None,
    )  # fmt: skip


class ParallelConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        communication_type=CommunicationType.MPI, communication_mode=CommunicationMode.LEADER,
        device_ids=None, participant_ids=None, orchestrator_config=None, num_nodes=None,
    )  # fmt: skip


class DecodingConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        decoding_mode=None, lookahead_decoding_config=None, medusa_choices=None, eagle_config=None
    )


class ExecutorConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        max_beam_width=1, scheduler_config=None, kv_cache_config=None, enable_chunked_context=False,
        normalize_log_probs=True, iter_stats_max_iterations=1000, request_stats_max_iterations=0,
        batching_type=BatchingType.INFLIGHT, max_batch_size=None, max_num_tokens=None, parallel_config=None,
        peft_cache_config=None, logits_post_processor_config=None, decoding_config=None,
        use_gpu_direct_storage=False, gpu_weights_percent=1.0, max_queue_size=None,
        extended_runtime_perf_knob_config=None, debug_config=None, recv_poll_period_ms=0,
        max_seq_idle_microseconds=180_000_000, spec_dec_config=None, guided_decoding_config=None,
        additional_model_outputs=None, cache_transceiver_config=None, gather_generation_logits=False,
        mm_embedding_offloading=False, enable_trt_overlap=False,
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scheduler_config = self.scheduler_config or SchedulerConfig()
        self.kv_cache_config = self.kv_cache_config or KvCacheConfig()


class SamplingConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        beam_width=1, top_k=None, top_p=None, top_p_min=None, top_p_reset_ids=None, top_p_decay=None,
        seed=None, temperature=None, min_tokens=None, beam_search_diversity_rate=None,
        repetition_penalty=None, presence_penalty=None, frequency_penalty=None, length_penalty=None,
        early_stopping=None, no_repeat_ngram_size=None, num_return_sequences=None, min_p=None,
        beam_width_array=None,
    )  # fmt: skip
    _positional = 1


class OutputConfig(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        return_log_probs=False, return_context_logits=False, return_generation_logits=False,
        exclude_input_from_output=False, return_encoder_output=False, return_perf_metrics=False,
        additional_model_outputs=None,
    )  # fmt: skip


class Request(_Binding):
    _fields: ClassVar[dict[str, Any]] = dict(
        input_token_ids=None, max_tokens=None, streaming=False, sampling_config=None, output_config=None,
        end_id=None, pad_id=None, position_ids=None, bad_words=None, stop_words=None, embedding_bias=None,
        external_draft_tokens_config=None, prompt_tuning_config=None, lora_config=None, lookahead_config=None,
        kv_cache_retention_config=None, logits_post_processor_name=None, client_id=None,
        return_all_generated_tokens=False, priority=0.5, num_return_sequences=1, guided_decoding_params=None,
        allotted_time_ms=None,
    )  # fmt: skip
    _positional = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.input_token_ids is None or self.max_tokens is None:
            raise TypeError("Request() needs input_token_ids and max_tokens")
        self.input_token_ids = [int(t) for t in self.input_token_ids]
        self.sampling_config = self.sampling_config or SamplingConfig()
        self.output_config = self.output_config or OutputConfig()

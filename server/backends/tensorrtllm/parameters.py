"""A tensorrtllm model's config.pbtxt parameters, named and defaulted as TensorRT-LLM's Triton backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.backends.llm.parameters import parse_parameters, require
from server.repository.model_config import ModelConfig

BATCHING_TYPES = ("inflight_fused_batching", "inflight_batching", "v1")
SCHEDULER_POLICIES = ("guaranteed_no_evict", "max_utilization")
DECODING_MODES = ("top_k", "top_p", "top_k_top_p", "beam_search")
UNSUPPORTED_DECODING_MODES = ("medusa", "redrafter", "lookahead", "eagle")


@dataclass(frozen=True)
class TensorRTLLMParameters:
    """Keys and defaults follow the TensorRT-LLM backend's docs/model_config.md (PROTOCOL.md 9.1)."""

    gpt_model_path: str = ""
    """Engine directory (config.json, rank*.engine), relative to the version dir; default: the version dir."""
    gpt_model_type: str = ""
    """inflight_fused_batching (default) / inflight_batching (in-flight) or V1 (static)."""
    batching_strategy: str = ""
    """Accepted as another name of gpt_model_type (the template variable's name)."""
    encoder_model_path: str = ""
    max_beam_width: int = 1
    max_tokens_in_paged_kv_cache: int | None = None
    kv_cache_free_gpu_mem_fraction: float | None = None
    """The executor's default is 0.9."""
    cross_kv_cache_fraction: float | None = None
    kv_cache_host_memory_bytes: int | None = None
    kv_cache_onboard_blocks: bool = True
    enable_kv_cache_reuse: bool = False
    batch_scheduler_policy: str = "guaranteed_no_evict"
    enable_chunked_context: bool = False
    max_attention_window_size: tuple[int, ...] = ()
    sink_token_length: int | None = None
    exclude_input_in_output: bool = False
    cancellation_check_period_ms: int = 100
    stats_check_period_ms: int = 100
    iter_stats_max_iterations: int | None = None
    request_stats_max_iterations: int | None = None
    normalize_log_probs: bool = True
    gpu_device_ids: tuple[int, ...] = ()
    participant_ids: tuple[int, ...] = ()
    num_nodes: int | None = None
    executor_worker_path: str = ""
    recv_poll_period_ms: int = 0
    lora_cache_optimal_adapter_size: int = 8
    lora_cache_max_adapter_size: int = 64
    lora_cache_gpu_memory_fraction: float | None = None
    lora_cache_host_memory_bytes: int | None = None
    lora_prefetch_dir: str = ""
    decoding_mode: str = ""
    medusa_choices: str = ""
    eagle_choices: str = ""
    lookahead_window_size: int | None = None
    lookahead_ngram_size: int | None = None
    lookahead_verification_set_size: int | None = None
    speculative_decoding_fast_logits: bool = False
    gpu_weights_percent: float = 1.0
    multi_block_mode: bool = True
    cuda_graph_mode: bool = False
    cuda_graph_cache_size: int = 0
    enable_context_fmha_fp32_acc: bool = False
    enable_trt_overlap: bool = False
    FORCE_CPU_ONLY_INPUT_TENSORS: str = "no"
    guided_decoding_backend: str = ""
    tokenizer_dir: str = ""
    """Where Hangar reads the text contract's tokenizer (default: the engine dir, then the version dir)."""
    xgrammar_tokenizer_info_path: str = ""

    def __post_init__(self) -> None:
        require(
            self.batching_type in BATCHING_TYPES,
            f"gpt_model_type {self.batching_type!r} is invalid: "
            "use inflight_fused_batching, inflight_batching or V1",
        )
        both = self.gpt_model_type and self.batching_strategy
        require(
            not both or self.gpt_model_type.lower() == self.batching_strategy.lower(),
            f"gpt_model_type {self.gpt_model_type!r} and batching_strategy {self.batching_strategy!r} "
            "disagree",
        )
        require(
            self.batch_scheduler_policy in SCHEDULER_POLICIES,
            f"batch_scheduler_policy {self.batch_scheduler_policy!r} is invalid: use guaranteed_no_evict or "
            "max_utilization",
        )
        require(self.max_beam_width >= 1, f"max_beam_width must be >= 1, got {self.max_beam_width}")
        for name in (
            "kv_cache_free_gpu_mem_fraction",
            "cross_kv_cache_fraction",
            "lora_cache_gpu_memory_fraction",
        ):
            value = getattr(self, name)
            require(value is None or 0.0 < value <= 1.0, f"{name} must be in (0, 1], got {value}")
        weights = self.gpu_weights_percent
        require(0.0 <= weights <= 1.0, f"gpu_weights_percent must be in [0, 1], got {weights}")
        period = self.stats_check_period_ms
        require(period >= 1, f"stats_check_period_ms must be >= 1, got {period}")
        self._refuse_unsupported()

    def _refuse_unsupported(self) -> None:
        mode = self.decoding_mode.lower()
        require(
            mode in ("", *DECODING_MODES),
            f"decoding_mode {self.decoding_mode!r} is not supported by Hangar "
            f"(use {', '.join(DECODING_MODES)}; not {', '.join(UNSUPPORTED_DECODING_MODES)})",
        )
        speculative = [n for n in ("medusa_choices", "eagle_choices") if getattr(self, n)]
        speculative += [
            n for n in ("lookahead_window_size", "lookahead_ngram_size") if getattr(self, n) is not None
        ]
        require(
            not speculative, f"speculative decoding ({', '.join(speculative)}) is not supported by Hangar"
        )
        require(not self.encoder_model_path, "encoder-decoder engines (encoder_model_path) are not supported")
        require(
            not self.guided_decoding_backend, "guided decoding (guided_decoding_backend) is not supported"
        )

    @property
    def batching_type(self) -> str:
        """gpt_model_type (or batching_strategy), lower case; inflight_fused_batching when neither is set."""
        return (self.gpt_model_type or self.batching_strategy or "inflight_fused_batching").lower()

    @classmethod
    def from_config(cls, config: ModelConfig) -> TensorRTLLMParameters:
        return parse_parameters(cls, config.parameters, "tensorrtllm")

    def engine_dir(self, version_dir: Path) -> Path:
        return version_dir / self.gpt_model_path if self.gpt_model_path else version_dir

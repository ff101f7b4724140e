"""PyTorchBackend: Hangar's own engine (EngineLoop + PyTorchModelRunner) behind both LLM contracts."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from server.backends.base import ModelVersionSpec
from server.backends.llm.backend import DeltaSink, LLMBackend
from server.backends.llm.deltas import FinishReason, TokenDelta
from server.backends.llm.parameters import parse_parameters, require
from server.backends.llm.tokenizer import has_tokenizer_files, load_tokenizer
from server.backends.llm.translation import GenerationRequest, ModelLimits
from server.backends.pytorch.runner import ATTENTION_BACKENDS, PyTorchModelRunner
from server.engine.config import EngineConfig
from server.engine.loop import EngineLoop
from server.engine.outputs import FinishReason as EngineFinish
from server.engine.outputs import RequestOutput
from server.engine.stats import SchedulerStats
from server.errors import LoadError, ModelNotReady
from server.repository.model_config import ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PyTorchParameters:
    """The `parameters` of a `backend: "pytorch"` model; every key is optional."""

    checkpoint_path: str = ""
    """Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer); relative paths are
    taken from the version directory. Default: the version directory itself."""
    dtype: str = "auto"
    """auto (float32 on CPU, the checkpoint's half type on CUDA), float32, bfloat16, float16."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda, cuda:N."""
    max_num_seqs: int = 64
    """Most requests in one engine step."""
    max_num_batched_tokens: int = 2048
    """Token budget of one step; longer prompts are prefilled in chunks."""
    block_size: int = 16
    """Tokens per KV block."""
    num_blocks: int | None = None
    """KV blocks in the pool; unset: sized from memory (kv_cache_free_mem_fraction)."""
    kv_cache_free_mem_fraction: float | None = None
    """Share of the memory free after loading the weights that the KV pool may take."""
    enable_prefix_caching: bool = True
    max_model_len: int | None = None
    """Longest prompt + output; unset: the checkpoint's max_position_embeddings."""
    exclude_input_in_output: bool = False
    """Default of the request flag: non-streamed outputs leave the prompt out (as TensorRT-LLM's)."""
    attention_backend: str = "auto"
    """auto (the native CPU paged-attention kernel when it applies and builds, else torch), native, torch."""

    def __post_init__(self) -> None:
        require(
            self.attention_backend in ATTENTION_BACKENDS,
            f"parameter attention_backend must be one of {', '.join(ATTENTION_BACKENDS)}, "
            f"got '{self.attention_backend}'",
        )
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size", "num_blocks", "max_model_len"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"parameter {name} must be >= 1, got {value}")
        fraction = self.kv_cache_free_mem_fraction
        require(
            fraction is None or 0.0 < fraction <= 1.0,
            f"parameter kv_cache_free_mem_fraction must be in (0, 1], got {fraction}",
        )
        require(
            self.num_blocks is None or fraction is None,
            "set either num_blocks or kv_cache_free_mem_fraction, not both",
        )
        require(
            self.max_num_batched_tokens >= self.max_num_seqs,
            f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_num_seqs "
            f"({self.max_num_seqs})",
        )

    @classmethod
    def from_config(cls, config: ModelConfig) -> PyTorchParameters:
        return parse_parameters(cls, config.parameters, "pytorch")

    def checkpoint_dir(self, version_dir: Path) -> Path:
        return version_dir / self.checkpoint_path if self.checkpoint_path else version_dir


_FINISH = {
    EngineFinish.STOP: FinishReason.STOP,
    EngineFinish.LENGTH: FinishReason.LENGTH,
    EngineFinish.ABORT: FinishReason.CANCELLED,
    EngineFinish.ERROR: FinishReason.ERROR,
}


def to_delta(out: RequestOutput) -> TokenDelta:
    """An engine output as the serving layer's delta (runs on the engine thread: keep it cheap)."""
    if out.finished and out.error is not None:
        return TokenDelta.failure(out.error)
    reason = _FINISH[out.finish_reason] if out.finished and out.finish_reason is not None else None
    return TokenDelta(out.new_token_ids, out.new_logprobs, out.finished, reason)


class PyTorchBackend(LLMBackend):
    """Hugging Face Llama-family checkpoints on Hangar's engine: in-flight batching over a paged KV cache."""

    def __init__(self, spec: ModelVersionSpec) -> None:
        super().__init__(spec)
        self.params = PyTorchParameters.from_config(spec.config)
        self._engine: EngineLoop | None = None

    @classmethod
    def check_parameters(cls, config: ModelConfig) -> None:
        PyTorchParameters.from_config(config)

    def load(self) -> None:
        p = self.params
        path = p.checkpoint_dir(self.spec.version_dir)
        if not path.is_dir():
            raise LoadError(f"checkpoint directory {path} does not exist")
        if has_tokenizer_files(path):
            self.tokenizer = load_tokenizer(path)
        else:
            log.warning(
                "%s: no tokenizer in %s; only the token contract (input_ids) is served", self.spec.name, path
            )
        runner = PyTorchModelRunner.from_checkpoint(
            path,
            dtype=p.dtype,
            device=p.device,
            block_size=p.block_size,
            num_blocks=p.num_blocks,
            kv_cache_memory_fraction=p.kv_cache_free_mem_fraction,
            max_num_batched_tokens=p.max_num_batched_tokens,
            max_model_len=p.max_model_len,
            attention_backend=p.attention_backend,
        )
        config = EngineConfig.from_runner(
            runner,
            max_num_seqs=p.max_num_seqs,
            max_num_batched_tokens=p.max_num_batched_tokens,
            enable_prefix_caching=p.enable_prefix_caching,
        )
        engine = EngineLoop(runner, config)
        engine.start()
        self.limits = ModelLimits(
            vocab_size=runner.vocab_size,
            max_model_len=runner.max_model_len,
            decoupled=self.spec.config.decoupled,
            exclude_input_in_output=p.exclude_input_in_output,
            eos_token_ids=tuple(runner.eos_token_ids),
        )
        self._engine = engine

    def _submit(self, engine_id: str, gen: GenerationRequest, sink: DeltaSink) -> None:
        engine = self._engine
        if engine is None:
            raise ModelNotReady(f"model '{self.spec.name}' is not loaded")
        engine.submit(engine_id, gen.prompt_token_ids, gen.sampling, lambda out: sink(to_delta(out)))

    def _abort(self, engine_id: str) -> None:
        if self._engine is not None:
            self._engine.abort(engine_id)

    def _finish(self, engine_id: str) -> None:
        if self._engine is not None:
            self._engine.finish(engine_id)

    @property
    def ready(self) -> bool:
        return self._engine is not None and self._engine.alive

    @property
    def engine_error(self) -> str | None:
        return self._engine.error if self._engine is not None else None

    def engine_stats(self) -> SchedulerStats | None:
        return self._engine.stats() if self._engine is not None else None

    def unload(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()
        del engine
        gc.collect()
        _free_cuda_cache()


def _free_cuda_cache() -> None:
    # Unloading must hand GPU memory back (TensorRT-LLM's backend does not: BE #48).
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

"""PyTorchModelRunner: the engine's ModelRunner for Llama-family checkpoints on CPU or CUDA."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from server.backends.pytorch.checkpoint import Checkpoint
from server.backends.pytorch.device import resolve_device, resolve_dtype
from server.backends.pytorch.host_memory import retain_freed_memory
from server.backends.pytorch.kernels.paged_attention import PagedAttentionKernel
from server.backends.pytorch.kernels.rotary import RotaryKernel
from server.backends.pytorch.kv_cache import KVCache
from server.backends.pytorch.kv_sizing import plan_num_blocks
from server.backends.pytorch.models.llama import LlamaForCausalLM
from server.backends.pytorch.sampler import Sampler
from server.backends.pytorch.step_inputs import StepLayout, build_step_inputs
from server.engine.runner import BatchItem, ModelRunner, StepOutput
from server.errors import ConfigError, LoadError

log = logging.getLogger(__name__)


class PyTorchModelRunner(ModelRunner):
    """Runs one engine step as a single flat forward pass over every item's tokens, then samples."""

    def __init__(
        self, model: LlamaForCausalLM, cache: KVCache, *, max_model_len: int, max_num_batched_tokens: int
    ) -> None:
        config = model.config
        self.model = model
        self.cache = cache
        self.device = cache.pool.device
        self.dtype = cache.pool.dtype
        self.block_size = cache.block_size
        self.num_blocks = cache.num_blocks
        self.max_model_len = max_model_len
        self.max_num_batched_tokens = max_num_batched_tokens
        self.vocab_size = config.vocab_size
        self.eos_token_ids = config.eos_token_ids
        self.sampler = Sampler(config.vocab_size, config.eos_token_ids, self.device)
        self.attention_backend = "native" if model.kernel is not None else "torch"
        self._layout = StepLayout(
            block_size=cache.block_size,
            num_blocks=cache.num_blocks,
            vocab_size=config.vocab_size,
            windows=tuple(set(config.sliding_windows)) or (None,),
            device=self.device,
            padded_groups=model.kernel is None,
        )
        self._poisoned: dict[str, str] = {}
        """Requests whose tokens were invalid: they fail at their next sampled step."""

    @classmethod
    def from_checkpoint(
        cls,
        path: Path,
        *,
        dtype: str = "auto",
        device: str = "auto",
        block_size: int = 16,
        num_blocks: int | None = None,
        kv_cache_memory_fraction: float | None = None,
        max_num_batched_tokens: int = 2048,
        max_model_len: int | None = None,
        attention_backend: str = "auto",
    ) -> PyTorchModelRunner:
        """Loads a Hugging Face checkpoint directory and allocates the KV pool.

        Args:
            path: config.json + model.safetensors (or shards with model.safetensors.index.json).
            dtype: "auto" (float32 on CPU; on CUDA the checkpoint's float16/bfloat16, else bfloat16),
                "float32", "bfloat16", "float16" (CUDA only).
            device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N".
            block_size: tokens per KV block.
            num_blocks: KV blocks to allocate; or leave None and size the pool from memory.
            kv_cache_memory_fraction: share of the memory available after loading the weights that the
                pool takes (default: 0.9 on CUDA; on CPU 0.25, at most 4 GiB). Exclusive with num_blocks.
            max_num_batched_tokens: the engine's per-step token budget (kept for the engine config).
            max_model_len: longest sequence (prompt + output); default: max_position_embeddings.
            attention_backend: "auto" (the native CPU kernel when it builds, else torch), "native", "torch".

        Raises:
            LoadError: unreadable/unsupported checkpoint, bad weights, or the KV pool does not fit.
            ConfigError: an invalid option value (named).
        """
        for name, value in (("block_size", block_size), ("max_num_batched_tokens", max_num_batched_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        torch_device = resolve_device(device)
        checkpoint = Checkpoint.open(Path(path))
        config = checkpoint.config
        torch_dtype = resolve_dtype(dtype, config.dtype, torch_device)
        limit = config.max_position_embeddings
        model_len = limit if max_model_len is None else max_model_len
        if not 0 < model_len <= limit:
            raise ConfigError(f"max_model_len {model_len} must be in [1, max_position_embeddings={limit}]")
        if torch_device.type == "cpu":
            retain_freed_memory()
        kernel = attention_kernel(attention_backend, torch_dtype, torch_device)
        with torch.inference_mode():
            model = LlamaForCausalLM(
                config,
                dtype=torch_dtype,
                device=torch_device,
                max_positions=model_len,
                kernel=kernel,
                rotary_kernel=RotaryKernel.load() if kernel is not None else None,
            )
            model.load_weights(checkpoint.tensors())
        blocks = plan_num_blocks(
            config,
            block_size=block_size,
            dtype=torch_dtype,
            device=torch_device,
            num_blocks=num_blocks,
            memory_fraction=kv_cache_memory_fraction,
        )
        if num_blocks is None and blocks * block_size < model_len:
            log.warning(
                "%s: the KV pool sized from free memory holds %d tokens, less than one sequence of "
                "max_model_len %d; is another model (or an older version of this one) holding the memory? "
                "Set the num_blocks parameter (or kv_cache_free_mem_fraction) to size it explicitly",
                path,
                blocks * block_size,
                model_len,
            )
        cache = KVCache.for_model(
            config, num_blocks=blocks, block_size=block_size, dtype=torch_dtype, device=torch_device
        )
        runner = cls(model, cache, max_model_len=model_len, max_num_batched_tokens=max_num_batched_tokens)
        log.info("loaded %s: %s", path, runner.describe())
        return runner

    def describe(self) -> str:
        """One line for logs: architecture, size, device, dtype, KV pool and attention path."""
        c = self.model.config
        return (
            f"{c.architecture}, {c.num_parameters / 1e6:.1f}M parameters, {self.device} {self.dtype}, "
            f"KV pool {self.num_blocks} x {self.block_size} tokens, {self.attention_backend} attention"
        )

    def release(self, request_id: str) -> None:
        self.sampler.release(request_id)
        self._poisoned.pop(request_id, None)

    @torch.inference_mode()
    def execute(self, items: Sequence[BatchItem]) -> list[StepOutput | None]:
        if not items:
            return []
        step = build_step_inputs(items, self._layout)
        for index, reason in step.invalid.items():
            self._poisoned[items[index].request_id] = reason
        logits = self.model(step.input_ids, step.meta.positions, step.meta, self.cache, step.logits_rows)
        results: list[StepOutput | None] = [None] * len(items)
        if step.sampled:
            outputs = self.sampler.sample(logits, [items[i] for i in step.sampled])
            for i, out in zip(step.sampled, outputs, strict=True):
                poisoned = self._poisoned.get(items[i].request_id)
                results[i] = StepOutput(token_id=0, error=poisoned) if poisoned else out
        return results


ATTENTION_BACKENDS = ("auto", "native", "torch")


def attention_kernel(backend: str, dtype: torch.dtype, device: torch.device) -> PagedAttentionKernel | None:
    """ "auto": the native kernel where it applies (CPU, float32/bfloat16) and builds, else torch SDPA;
    "native": the kernel or a LoadError; "torch": always torch (gathered context + SDPA)."""
    if backend not in ATTENTION_BACKENDS:
        raise ConfigError(f"unknown attention_backend '{backend}' (use {', '.join(ATTENTION_BACKENDS)})")
    if backend == "torch" or (backend == "auto" and not PagedAttentionKernel.supports(dtype, device)):
        return None
    if not PagedAttentionKernel.supports(dtype, device):
        raise ConfigError(
            f"the native attention kernel needs a CPU and float32/bfloat16, not {device} {dtype}"
        )
    kernel = PagedAttentionKernel.load()
    if kernel is None and backend == "native":
        raise LoadError(
            "attention_backend 'native' requested but the kernel could not be built (see the log)"
        )
    return kernel

"""PyTorchModelRunner: the engine's ModelRunner for Llama-family checkpoints on CPU or CUDA."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import torch

from server.backends.pytorch.attention_metadata import AttentionMetadata, build_attention_metadata
from server.backends.pytorch.checkpoint import Checkpoint
from server.backends.pytorch.device import resolve_device, resolve_dtype
from server.backends.pytorch.kernels.paged_decode import PagedDecodeKernel
from server.backends.pytorch.kv_cache import KVCache
from server.backends.pytorch.kv_sizing import plan_num_blocks
from server.backends.pytorch.models.llama import LlamaForCausalLM
from server.backends.pytorch.sampler import Sampler
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
        self._windows = tuple(set(config.sliding_windows)) or (None,)
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
        kernel = decode_kernel(attention_backend, torch_dtype, torch_device)
        with torch.inference_mode():
            model = LlamaForCausalLM(
                config, dtype=torch_dtype, device=torch_device, max_positions=model_len, decode_kernel=kernel
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
        cache = KVCache(
            num_layers=config.num_layers,
            num_blocks=blocks,
            block_size=block_size,
            num_kv_heads=config.num_kv_heads,
            head_dim=config.head_dim,
            dtype=torch_dtype,
            device=torch_device,
        )
        log.info(
            "loaded %s (%s, %.1fM parameters) on %s as %s; KV pool %d blocks of %d tokens; %s attention",
            path,
            config.architecture,
            config.num_parameters / 1e6,
            torch_device,
            torch_dtype,
            blocks,
            block_size,
            "native" if kernel else "torch",
        )
        return cls(model, cache, max_model_len=model_len, max_num_batched_tokens=max_num_batched_tokens)

    def release(self, request_id: str) -> None:
        self.sampler.release(request_id)
        self._poisoned.pop(request_id, None)

    @torch.inference_mode()
    def execute(self, items: Sequence[BatchItem]) -> list[StepOutput | None]:
        if not items:
            return []
        input_ids, meta = self._prepare(items)
        sampled = [i for i, it in enumerate(items) if it.sample]
        rows = torch.from_numpy(
            np.cumsum([len(it.token_ids) for it in items])[sampled] - 1 if sampled else np.zeros(0, np.int64)
        ).to(self.device)
        logits = self.model(input_ids, meta.positions, meta, self.cache, rows)
        results: list[StepOutput | None] = [None] * len(items)
        if sampled:
            for i, out in zip(sampled, self.sampler.sample(logits, [items[i] for i in sampled]), strict=True):
                reason = self._poisoned.get(items[i].request_id)
                results[i] = StepOutput(token_id=0, error=reason) if reason else out
        return results

    def _prepare(self, items: Sequence[BatchItem]) -> tuple[torch.Tensor, AttentionMetadata]:
        n, bs = len(items), self.block_size
        lengths = np.fromiter((len(it.token_ids) for it in items), np.int64, n)
        starts = np.fromiter((it.start_pos for it in items), np.int64, n)
        tokens = np.fromiter(chain.from_iterable(it.token_ids for it in items), np.int64, int(lengths.sum()))
        needed = (starts + lengths + bs - 1) // bs
        tables = np.full((n, int(needed.max())), self.cache.null_block, np.int64)
        for row, item in enumerate(items):
            count = int(needed[row])
            if len(item.block_table) < count:
                raise RuntimeError(
                    f"request {item.request_id}: block table has {len(item.block_table)} blocks, "
                    f"positions up to {starts[row] + lengths[row] - 1} need {count}"
                )
            tables[row, :count] = item.block_table[:count]
        if (tables[tables != self.cache.null_block] >= self.num_blocks).any() or (tables < 0).any():
            raise RuntimeError(f"block table ids outside [0, {self.num_blocks})")
        self._check_tokens(items, tokens, lengths)
        meta = build_attention_metadata(
            lengths=lengths,
            starts=starts,
            block_tables=tables,
            block_size=bs,
            null_block=self.cache.null_block,
            windows=self._windows,
            device=self.device,
        )
        return torch.from_numpy(tokens).to(self.device), meta

    def _check_tokens(self, items: Sequence[BatchItem], tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Out-of-vocabulary ids fail their own request (at its next sample), never the step."""
        bad = (tokens < 0) | (tokens >= self.vocab_size)
        if not bad.any():
            return
        item_of_token = np.repeat(np.arange(len(items)), lengths)
        for row in np.unique(item_of_token[bad]):
            first = int(tokens[bad & (item_of_token == row)][0])
            self._poisoned[items[row].request_id] = (
                f"token id {first} is outside the vocabulary [0, {self.vocab_size})"
            )
        tokens[bad] = 0


ATTENTION_BACKENDS = ("auto", "native", "torch")


def decode_kernel(backend: str, dtype: torch.dtype, device: torch.device) -> PagedDecodeKernel | None:
    """ "auto": the native kernel where it applies (CPU, float32/bfloat16) and builds, else torch SDPA;
    "native": the kernel or a LoadError; "torch": always torch (gathered context + SDPA)."""
    if backend not in ATTENTION_BACKENDS:
        raise ConfigError(f"unknown attention_backend '{backend}' (use {', '.join(ATTENTION_BACKENDS)})")
    if backend == "torch" or (backend == "auto" and not PagedDecodeKernel.supports(dtype, device)):
        return None
    if not PagedDecodeKernel.supports(dtype, device):
        raise ConfigError(
            f"the native attention kernel needs a CPU and float32/bfloat16, not {device} {dtype}"
        )
    kernel = PagedDecodeKernel.load()
    if kernel is None and backend == "native":
        raise LoadError(
            "attention_backend 'native' requested but the kernel could not be built (see the log)"
        )
    return kernel

"""How many KV blocks to allocate: an explicit count, or a fraction of the memory left after the weights."""

from __future__ import annotations

import torch

from server.backends.pytorch.arch_config import ArchConfig
from server.backends.pytorch.kv_cache import KVCache, available_memory_bytes
from server.errors import ConfigError, LoadError

DEFAULT_CUDA_FRACTION = 0.9
DEFAULT_CPU_FRACTION = 0.25
DEFAULT_CPU_CAP_BYTES = 4 << 30
"""Without an explicit size a CPU pool takes a quarter of free memory, at most 4 GiB."""


def plan_num_blocks(
    config: ArchConfig,
    *,
    block_size: int,
    dtype: torch.dtype,
    device: torch.device,
    num_blocks: int | None,
    memory_fraction: float | None,
) -> int:
    """`num_blocks` when given; else `memory_fraction` (default: 0.9 on CUDA, 0.25 capped at 4 GiB on CPU)
    of the device memory available now, i.e. after the weights are loaded.

    Raises:
        ConfigError: both or invalid values given. LoadError: not even one block fits.
    """
    if num_blocks is not None and memory_fraction is not None:
        raise ConfigError("give num_blocks or kv_cache_memory_fraction, not both")
    if num_blocks is not None:
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ConfigError(f"num_blocks must be an integer >= 1, got {num_blocks!r}")
        return num_blocks
    if memory_fraction is not None and not 0.0 < memory_fraction <= 1.0:
        raise ConfigError(f"kv_cache_memory_fraction must be in (0, 1], got {memory_fraction}")
    per_block = KVCache.bytes_per_block(
        num_layers=config.num_layers,
        block_size=block_size,
        num_kv_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        dtype=dtype,
    )
    available = available_memory_bytes(device)
    if memory_fraction is not None:
        budget = int(available * memory_fraction)
    elif device.type == "cuda":
        budget = int(available * DEFAULT_CUDA_FRACTION)
    else:
        budget = min(int(available * DEFAULT_CPU_FRACTION), DEFAULT_CPU_CAP_BYTES)
    blocks = budget // per_block
    if blocks < 1:
        raise LoadError(
            f"no room for the KV pool: {budget} bytes budgeted, "
            f"one block of {block_size} tokens needs {per_block}"
        )
    return int(blocks)

"""The paged KV pool: one tensor allocated at load, plus the reusable buffers attention gathers into."""

from __future__ import annotations

import os

import torch

from server.backends.pytorch.arch_config import ArchConfig
from server.backends.pytorch.host_memory import huge_page_zeros
from server.errors import LoadError


class KVCache:
    """K and V of every layer in blocks, each layer [num_blocks + 1, block_size, kv_heads, head_dim].

    Block ids 0 .. num_blocks - 1 belong to the engine's block manager. The extra last block is the
    null block: always zero, it pads gathers so masked positions never read stale (possibly NaN) values.
    """

    def __init__(
        self,
        *,
        num_layers: int,
        num_blocks: int,
        block_size: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        if num_blocks < 1 or block_size < 1:
            raise LoadError(
                f"the KV pool needs num_blocks >= 1 and block_size >= 1, got {num_blocks}, {block_size}"
            )
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.null_block = num_blocks
        shape = (num_layers, 2, num_blocks + 1, block_size, num_kv_heads, head_dim)
        try:
            pool = huge_page_zeros(shape, dtype) if device.type == "cpu" else None
            self.pool = pool if pool is not None else torch.zeros(shape, dtype=dtype, device=device)
        except (RuntimeError, MemoryError) as e:
            raise LoadError(f"cannot allocate a KV pool of {num_blocks} blocks {list(shape)}: {e}") from e
        self._gather = GatherBuffers(block_size, num_kv_heads, head_dim, dtype, device)

    @classmethod
    def for_model(
        cls, config: ArchConfig, *, num_blocks: int, block_size: int, dtype: torch.dtype, device: torch.device
    ) -> KVCache:
        """A pool shaped for `config`'s layers and kv heads."""
        return cls(
            num_layers=config.num_layers,
            num_blocks=num_blocks,
            block_size=block_size,
            num_kv_heads=config.num_kv_heads,
            head_dim=config.head_dim,
            dtype=dtype,
            device=device,
        )

    def keys(self, layer: int) -> torch.Tensor:
        return self.pool[layer, 0]

    def values(self, layer: int) -> torch.Tensor:
        return self.pool[layer, 1]

    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Stores k, v [tokens, kv_heads, head_dim] at flat slot ids (block * block_size + offset)."""
        kv = self.pool[layer]
        kv[0].view(-1, *kv.shape[-2:]).index_copy_(0, slots, k)
        kv[1].view(-1, *kv.shape[-2:]).index_copy_(0, slots, v)

    def gather(self, layer: int, block_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K, V of the listed blocks, [len(block_ids), block_size, kv_heads, head_dim] each.

        The result lives in buffers reused by the next call: consume it before gathering again.
        """
        k_out, v_out = self._gather.take(block_ids.numel())
        torch.index_select(self.keys(layer), 0, block_ids, out=k_out)
        torch.index_select(self.values(layer), 0, block_ids, out=v_out)
        return k_out, v_out

    @staticmethod
    def bytes_per_block(
        *, num_layers: int, block_size: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype
    ) -> int:
        itemsize = torch.empty((), dtype=dtype).element_size()
        return 2 * num_layers * block_size * num_kv_heads * head_dim * itemsize


class GatherBuffers:
    """Two growing buffers for gathered K and V: a fresh multi-megabyte tensor per layer costs page faults."""

    def __init__(
        self, block_size: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        self._block_shape = (block_size, num_kv_heads, head_dim)
        self._dtype, self._device = dtype, device
        self._k = self._v = torch.empty(0, *self._block_shape, dtype=dtype, device=device)

    def take(self, num_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
        if num_blocks > self._k.shape[0]:
            capacity = max(num_blocks, self._k.shape[0] * 3 // 2)
            self._k = torch.empty(capacity, *self._block_shape, dtype=self._dtype, device=self._device)
            self._v = torch.empty_like(self._k)
        return self._k[:num_blocks], self._v[:num_blocks]


def available_memory_bytes(device: torch.device) -> int:
    """Free memory on `device` now: the CUDA allocator's view, or MemAvailable on the host."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))

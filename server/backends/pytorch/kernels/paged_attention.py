"""Causal attention read straight from the paged KV pool by the native kernel (paged_attention.c)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from server.backends.pytorch.kernels.native_kernel import NativeKernel

SOURCE = Path(__file__).with_name("paged_attention.c")
_SYMBOLS = {torch.float32: "paged_attention_f32", torch.bfloat16: "paged_attention_bf16"}


class PagedAttentionKernel(NativeKernel):
    """Every sequence's new query tokens attending to its whole context through its block table (CPU)."""

    SOURCE = SOURCE
    SYMBOLS = _SYMBOLS
    ARGTYPES = (
        *(ctypes.c_void_p,) * 4, ctypes.c_int64, *(ctypes.c_void_p,) * 3, *(ctypes.c_int64,) * 6,
        ctypes.c_float, ctypes.c_void_p, ctypes.c_int,
    )  # fmt: skip
    RESTYPE = ctypes.c_int

    def __call__(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        *,
        tables: torch.Tensor,
        q_starts: torch.Tensor,
        q_lens: torch.Tensor,
        ctx_lens: torch.Tensor,
        window: int | None,
        scale: float,
    ) -> torch.Tensor:
        """q [tokens, heads, dim]; keys/values [blocks, block_size, kv_heads, dim] (one layer of the pool);
        tables [n, width], q_starts/q_lens/ctx_lens [n], all int64. Returns [tokens, heads, dim]."""
        _tokens, heads, dim = q.shape
        _blocks, block_size, kv_heads, _ = keys.shape
        for t in (q, keys, values, tables, q_starts, q_lens, ctx_lens):
            assert t.is_contiguous() and t.device.type == "cpu"
        assert keys.dtype == values.dtype == q.dtype and tables.dtype == torch.int64
        out = torch.empty_like(q)
        rc = self._functions[q.dtype](
            q.data_ptr(), keys.data_ptr(), values.data_ptr(), tables.data_ptr(), tables.shape[1],
            q_starts.data_ptr(), q_lens.data_ptr(), ctx_lens.data_ptr(), q_starts.shape[0],
            heads, kv_heads, dim, block_size, window or 0, scale, out.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        if rc != 0:
            raise MemoryError("the native attention kernel could not allocate its scratch buffers")
        return out

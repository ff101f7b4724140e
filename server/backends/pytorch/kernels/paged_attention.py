"""Causal attention read straight from the paged KV pool by the native kernel (paged_attention.c)."""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import torch

from server.backends.pytorch.kernels.native_build import load_library

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("paged_attention.c")
_SYMBOLS = {torch.float32: "paged_attention_f32", torch.bfloat16: "paged_attention_bf16"}


class PagedAttentionKernel:
    """Every sequence's new query tokens attending to its whole context through its block table (CPU)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        ptr, i64 = ctypes.c_void_p, ctypes.c_int64
        args = [ptr, ptr, ptr, ptr, i64, ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, ctypes.c_float, ptr]
        self._functions = {}
        for dtype, name in _SYMBOLS.items():
            fn = getattr(library, name)
            fn.argtypes = [*args, ctypes.c_int]
            fn.restype = ctypes.c_int
            self._functions[dtype] = fn

    @classmethod
    def load(cls) -> PagedAttentionKernel | None:
        """Builds (or finds the cached build of) the kernel; None when it cannot be built or loaded."""
        library = load_library(SOURCE)
        if library is None:
            return None
        try:
            return cls(library)
        except AttributeError as e:
            log.warning("the native attention kernel lacks a symbol: %s", e)
            return None

    @staticmethod
    def supports(dtype: torch.dtype, device: torch.device) -> bool:
        return device.type == "cpu" and dtype in _SYMBOLS

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

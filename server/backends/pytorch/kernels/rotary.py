"""Rotary embeddings applied in place by the native kernel (rotary.c), bit-exact with the torch ops."""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import torch

from server.backends.pytorch.kernels.native_build import load_library

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("rotary.c")
_SYMBOLS = {torch.float32: "rotary_f32", torch.bfloat16: "rotary_bf16"}


class RotaryKernel:
    """Rotates a [tokens, heads, head_dim] view in place, rows possibly strided (a slice of fused qkv):
    one pass over the data where the torch form (`x * cos + cat(-x2, x1) * sin`) makes five."""

    def __init__(self, library: ctypes.CDLL) -> None:
        ptr, i64 = ctypes.c_void_p, ctypes.c_int64
        self._functions = {}
        for dtype, name in _SYMBOLS.items():
            fn = getattr(library, name)
            fn.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, ptr, ctypes.c_int]
            fn.restype = None
            self._functions[dtype] = fn

    @classmethod
    def load(cls) -> RotaryKernel | None:
        """Builds (or finds the cached build of) the kernel; None when it cannot be built or loaded."""
        library = load_library(SOURCE)
        if library is None:
            return None
        try:
            return cls(library)
        except AttributeError as e:
            log.warning("the native rotary kernel lacks a symbol: %s", e)
            return None

    @staticmethod
    def supports(dtype: torch.dtype, device: torch.device) -> bool:
        return device.type == "cpu" and dtype in _SYMBOLS

    def __call__(
        self, x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """x [tokens, heads, dim] (dim and heads contiguous); positions [tokens] int64; cos/sin
        [max_positions, dim] float32. Returns x, rotated in place."""
        tokens, heads, dim = x.shape
        assert x.stride(2) == 1 and x.stride(1) == dim and x.device.type == "cpu"
        assert positions.dtype == torch.int64 and positions.is_contiguous() and positions.shape[0] == tokens
        assert cos.dtype == sin.dtype == torch.float32 and cos.is_contiguous() and sin.is_contiguous()
        self._functions[x.dtype](
            x.data_ptr(), tokens, x.stride(0), heads, dim, positions.data_ptr(), cos.data_ptr(),
            sin.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        return x

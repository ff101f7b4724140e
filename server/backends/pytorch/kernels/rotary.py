"""Rotary embeddings applied in place by the native kernel (rotary.c), bit-exact with the torch ops."""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from server.backends.pytorch.kernels.native_kernel import NativeKernel

SOURCE = Path(__file__).with_name("rotary.c")
_SYMBOLS = {torch.float32: "rotary_f32", torch.bfloat16: "rotary_bf16"}


class RotaryKernel(NativeKernel):
    """Rotates a [tokens, heads, head_dim] view in place, rows possibly strided (a slice of fused qkv):
    one pass over the data where the torch form (`x * cos + cat(-x2, x1) * sin`) makes five."""

    SOURCE = SOURCE
    SYMBOLS = _SYMBOLS
    ARGTYPES = (ctypes.c_void_p, *(ctypes.c_int64,) * 4, *(ctypes.c_void_p,) * 3, ctypes.c_int)

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

"""Rotary position embeddings (the rotate-half form), with llama3 and linear frequency scaling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from server.backends.pytorch.arch_config import RopeConfig
from server.backends.pytorch.kernels.rotary import RotaryKernel


def inverse_frequencies(head_dim: int, rope: RopeConfig) -> torch.Tensor:
    """Per-pair rotation frequencies in float32, computed the way the reference implementation does."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim
    inv_freq = 1.0 / (rope.theta**exponents)
    if rope.scaling == "linear":
        return inv_freq / rope.factor
    if rope.scaling == "llama3":
        return _llama3(inv_freq, rope)
    return inv_freq


def _llama3(inv_freq: torch.Tensor, rope: RopeConfig) -> torch.Tensor:
    old_len = rope.original_max_position_embeddings
    low_freq_wavelen = old_len / rope.low_freq_factor
    high_freq_wavelen = old_len / rope.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq)
    smooth = (old_len / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)
    smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


@dataclass(frozen=True)
class Rotation:
    """One step's rotary embedding, applied to q and k of every layer."""

    cos: torch.Tensor
    """With the kernel: the float32 [max_positions, head_dim] table; else [tokens, 1, head_dim] in the
    model dtype, broadcasting over heads."""
    sin: torch.Tensor
    positions: torch.Tensor
    kernel: RotaryKernel | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [tokens, heads, head_dim] rotated; the kernel rotates it in place (x may be a view)."""
        if self.kernel is not None:
            return self.kernel(x, self.positions, self.cos, self.sin)
        return apply_rotary(x, self.cos, self.sin)


class RotaryEmbedding:
    """cos/sin tables for every position up to `max_positions`, looked up once per step."""

    def __init__(
        self,
        head_dim: int,
        rope: RopeConfig,
        max_positions: int,
        device: torch.device,
        kernel: RotaryKernel | None = None,
    ) -> None:
        inv_freq = inverse_frequencies(head_dim, rope)
        freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        self.cos = angles.cos().to(device)
        self.sin = angles.sin().to(device)
        self.kernel = kernel if device.type == "cpu" else None

    def lookup(self, positions: torch.Tensor, dtype: torch.dtype) -> Rotation:
        """The rotation of a step whose tokens sit at `positions` ([tokens] int64)."""
        if self.kernel is not None and RotaryKernel.supports(dtype, positions.device):
            return Rotation(self.cos, self.sin, positions, self.kernel)
        cos, sin = self.cos[positions].to(dtype)[:, None, :], self.sin[positions].to(dtype)[:, None, :]
        return Rotation(cos, sin, positions)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [tokens, heads, head_dim] rotated by the angles of each token's position."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin

"""The native rotary kernel: in place on strided q/k views, bit for bit what the torch ops compute."""

from __future__ import annotations

import pytest
import torch

from server.backends.pytorch.arch_config import RopeConfig
from server.backends.pytorch.kernels.rotary import RotaryKernel
from server.backends.pytorch.layers.rotary import RotaryEmbedding, apply_rotary


@pytest.fixture(scope="module")
def kernel() -> RotaryKernel:
    loaded = RotaryKernel.load()
    if loaded is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    return loaded


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("tokens", [1, 7, 300])
def test_kernel_matches_torch_bit_for_bit_on_a_strided_view(
    kernel: RotaryKernel, dtype: torch.dtype, tokens: int
) -> None:
    heads, kv_heads, dim = 6, 2, 16
    rope = RopeConfig(theta=10000.0)
    table = RotaryEmbedding(dim, rope, 512, torch.device("cpu"))
    gen = torch.Generator().manual_seed(tokens)
    qkv = (torch.randn(tokens, (heads + 2 * kv_heads) * dim, generator=gen) * 3).to(dtype)
    positions = torch.randint(0, 512, (tokens,), generator=gen)
    q = qkv[:, : heads * dim].view(tokens, heads, dim)
    k = qkv[:, heads * dim : (heads + kv_heads) * dim].view(tokens, kv_heads, dim)
    cos, sin = table.cos[positions].to(dtype)[:, None, :], table.sin[positions].to(dtype)[:, None, :]
    want_q, want_k = apply_rotary(q.clone(), cos, sin), apply_rotary(k.clone(), cos, sin)
    v_before = qkv[:, (heads + kv_heads) * dim :].clone()
    assert kernel(q, positions, table.cos, table.sin) is q
    kernel(k, positions, table.cos, table.sin)
    assert torch.equal(q, want_q) and torch.equal(k, want_k)
    assert torch.equal(qkv[:, (heads + kv_heads) * dim :], v_before)  # v is not touched


def test_embedding_uses_the_kernel_only_where_it_applies(kernel: RotaryKernel) -> None:
    table = RotaryEmbedding(8, RopeConfig(theta=10000.0), 64, torch.device("cpu"), kernel)
    positions = torch.tensor([3, 0, 63])
    assert table.lookup(positions, torch.float32).kernel is kernel
    assert table.lookup(positions, torch.float16).kernel is None  # no float16 kernel: the torch form
    x = torch.randn(3, 2, 8, dtype=torch.float16)
    torch.testing.assert_close(
        table.lookup(positions, torch.float16)(x.clone()),
        apply_rotary(x, table.cos[positions].half()[:, None], table.sin[positions].half()[:, None]),
    )

"""Paged attention: the native decode kernel and the torch path against a dense reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from server.backends.pytorch.attention_metadata import DENSE_PREFILL_MIN, build_attention_metadata
from server.backends.pytorch.kernels.paged_attention import PagedAttentionKernel
from server.backends.pytorch.kv_cache import KVCache

BLOCKS, BS, KVH, HEADS, DIM = 40, 4, 2, 6, 8


@pytest.fixture(scope="module")
def kernel() -> PagedAttentionKernel:
    loaded = PagedAttentionKernel.load()
    if loaded is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    return loaded


def scattered_tables(ctx_lens: list[int], seed: int) -> torch.Tensor:
    """Block tables using shuffled, non-contiguous blocks; padding is the null block."""
    perm = torch.randperm(BLOCKS, generator=torch.Generator().manual_seed(seed)).tolist()
    width = max((n + BS - 1) // BS for n in ctx_lens)
    tables = torch.full((len(ctx_lens), width), BLOCKS, dtype=torch.int64)
    for row, n in enumerate(ctx_lens):
        count = (n + BS - 1) // BS
        tables[row, :count] = torch.tensor(perm[:count])
        perm = perm[count:]
    return tables


def dense_reference(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    tables: torch.Tensor,
    q_lens: list[int],
    ctx: list[int],
    window: int | None,
) -> torch.Tensor:
    """Causal attention of each sequence's queries over its own context, one sequence at a time."""
    outs, row = [], 0
    for s, (n_q, n) in enumerate(zip(q_lens, ctx, strict=True)):
        k = keys[tables[s]].reshape(-1, KVH, DIM)[:n].float().repeat_interleave(HEADS // KVH, 1)
        v = values[tables[s]].reshape(-1, KVH, DIM)[:n].float().repeat_interleave(HEADS // KVH, 1)
        pos = torch.arange(n - n_q, n)[:, None]
        key = torch.arange(n)[None, :]
        visible = (key <= pos) & ((key > pos - window) if window else True)
        scores = torch.einsum("qhd,khd->hqk", q[row : row + n_q].float(), k) / DIM**0.5
        probs = scores.masked_fill(~visible, float("-inf")).softmax(-1)
        outs.append(torch.einsum("hqk,khd->qhd", probs, v))
        row += n_q
    return torch.cat(outs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("q_lens", [[1], [1, 1, 1], [1] * 9, [7], [1, 20, 1, 3], [33, 17]])
def test_native_kernel_matches_reference(
    kernel: PagedAttentionKernel, dtype: torch.dtype, window: int | None, q_lens: list[int]
) -> None:
    """Decodes (one query) and prompt chunks (several, longer than a 16-query tile) after cached context."""
    gen = torch.Generator().manual_seed(len(q_lens))
    keys = torch.randn(BLOCKS + 1, BS, KVH, DIM, generator=gen).to(dtype)
    values = torch.randn(BLOCKS + 1, BS, KVH, DIM, generator=gen).to(dtype)
    cached = torch.randint(0, 12, (len(q_lens),), generator=gen).tolist()
    ctx = [c + n for c, n in zip(cached, q_lens, strict=True)]
    tables = scattered_tables(ctx, len(q_lens))
    q = torch.randn(sum(q_lens), HEADS, DIM, generator=gen).to(dtype)
    starts = torch.tensor([0, *q_lens[:-1]]).cumsum(0)
    lens, ctx_lens = torch.tensor(q_lens), torch.tensor(ctx)
    got = kernel(
        q, keys, values, tables=tables, q_starts=starts, q_lens=lens, ctx_lens=ctx_lens, window=window,
        scale=DIM**-0.5,
    )  # fmt: skip
    want = dense_reference(q, keys, values, tables, q_lens, ctx, window)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want, atol=tol, rtol=tol)


def test_torch_path_writes_slots_and_attends_through_tables() -> None:
    """Metadata + KVCache.write + gather + masks reproduce causal attention for a chunk and a decode."""
    cache = KVCache(
        num_layers=1, num_blocks=BLOCKS, block_size=BS, num_kv_heads=KVH, head_dim=DIM,
        dtype=torch.float32, device=torch.device("cpu"),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(7)
    history = torch.randn(9, KVH, DIM, generator=gen), torch.randn(9, KVH, DIM, generator=gen)
    tables = np.array([[3, 17, 5], [8, 2, BLOCKS]])
    lengths, starts = np.array([6, 1]), np.array([3, 4])  # a chunk at 3..8, a decode at position 4
    meta = build_attention_metadata(
        lengths=lengths, starts=starts, block_tables=tables, block_size=BS, null_block=BLOCKS,
        windows=[None], device=torch.device("cpu"),
    )  # fmt: skip
    assert meta.positions.tolist() == [3, 4, 5, 6, 7, 8, 4]
    assert meta.slot_mapping.tolist() == [
        3 * BS + 3,
        17 * BS,
        17 * BS + 1,
        17 * BS + 2,
        17 * BS + 3,
        5 * BS,
        2 * BS,
    ]
    # the cached prefixes (positions 0..2 of seq 0, 0..3 of seq 1) then this step's tokens
    k, v = history
    prefix = torch.tensor([3 * BS, 3 * BS + 1, 3 * BS + 2, 8 * BS, 8 * BS + 1, 8 * BS + 2, 8 * BS + 3])
    cache.write(0, prefix, torch.cat([k[:3], k[:4]]), torch.cat([v[:3], v[:4]]))
    cache.write(0, meta.slot_mapping, torch.cat([k[3:9], k[4:5]]), torch.cat([v[3:9], v[4:5]]))
    decode, prefill = meta.groups
    assert decode.q_len == 1 and prefill.q_len == 6
    keys, values = cache.gather(0, prefill.block_ids)
    assert torch.equal(keys.reshape(-1, KVH, DIM)[:9], k)
    q = torch.randn(6, HEADS, DIM, generator=gen)
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], keys.reshape(1, -1, KVH, DIM).transpose(1, 2),
        values.reshape(1, -1, KVH, DIM).transpose(1, 2), attn_mask=prefill.masks[None], enable_gqa=True,
    )[0].transpose(0, 1)  # fmt: skip
    full = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
        attn_mask=torch.ones(6, 9, dtype=torch.bool).tril(3), enable_gqa=True,
    )[0].transpose(0, 1)  # fmt: skip
    torch.testing.assert_close(out, full)
    assert cache.values(0)[BLOCKS].abs().sum() == 0  # the null block stays zero


def test_kernel_metadata_sends_long_fresh_prompts_to_dense_attention() -> None:
    """Fresh prompts of DENSE_PREFILL_MIN+ tokens become dense spans (unless a sliding window is shorter);
    the kernel keeps decodes, short prompts and chunks after cached context."""
    n = DENSE_PREFILL_MIN
    lengths, starts = np.array([1, n, n - 1, n + 3]), np.array([7, 0, 0, 4])
    width = (max(lengths + starts) + BS - 1) // BS
    tables = np.arange(4 * width).reshape(4, width)
    meta = build_attention_metadata(
        lengths=lengths, starts=starts, block_tables=tables, block_size=BS, null_block=4 * width,
        windows=[None], device=torch.device("cpu"), padded_groups=False,
    )  # fmt: skip
    assert meta.dense_spans == ((1, n),)
    assert meta.sequences is not None
    assert meta.sequences.q_starts.tolist() == [0, 1 + n, 2 * n]
    assert meta.sequences.ctx_lens.tolist() == [8, n - 1, n + 7]
    assert meta.sequences.tables.tolist() == tables[[0, 2, 3]].tolist()
    windowed = build_attention_metadata(
        lengths=lengths, starts=starts, block_tables=tables, block_size=BS, null_block=4 * width,
        windows=[None, n - 1], device=torch.device("cpu"), padded_groups=False,
    )  # fmt: skip
    assert windowed.dense_spans == ()
    assert windowed.sequences is not None and windowed.sequences.q_lens.tolist() == lengths.tolist()

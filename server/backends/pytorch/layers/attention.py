"""Self-attention over the paged KV cache: project, rotate, write K/V into the pool, attend."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from server.backends.pytorch.arch_config import ArchConfig
from server.backends.pytorch.attention_metadata import AttentionGroup, AttentionMetadata
from server.backends.pytorch.kernels.paged_attention import PagedAttentionKernel
from server.backends.pytorch.kv_cache import KVCache
from server.backends.pytorch.layers.linear import Linear
from server.backends.pytorch.layers.rmsnorm import RMSNorm
from server.backends.pytorch.layers.rotary import Rotation


class Attention(nn.Module):
    """Grouped-query attention of one layer; `qkv.weight` holds q rows, then k rows, then v rows."""

    def __init__(
        self,
        config: ArchConfig,
        layer: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        kernel: PagedAttentionKernel | None = None,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.kernel = kernel
        """Attends straight from the pool; None: gather each group's context and use torch SDPA."""
        self.num_heads, self.num_kv_heads, self.head_dim = (
            config.num_heads,
            config.num_kv_heads,
            config.head_dim,
        )
        self.q_size = self.num_heads * self.head_dim
        self.kv_size = self.num_kv_heads * self.head_dim
        self.window = config.sliding_windows[layer] if config.sliding_windows else None
        self.scale = self.head_dim**-0.5
        hidden = config.hidden_size
        self.qkv = Linear(
            hidden, self.q_size + 2 * self.kv_size, bias=config.qkv_bias, dtype=dtype, device=device
        )
        self.o = Linear(self.q_size, hidden, bias=config.o_bias, dtype=dtype, device=device)
        self.q_norm = self.k_norm = None
        if config.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps, dtype=dtype, device=device)
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps, dtype=dtype, device=device)

    def forward(
        self,
        x: torch.Tensor,
        rotary: Rotation,
        meta: AttentionMetadata,
        cache: KVCache,
    ) -> torch.Tensor:
        tokens = x.shape[0]
        q, k, v = self.qkv(x).split((self.q_size, self.kv_size, self.kv_size), dim=-1)
        q = q.view(tokens, self.num_heads, self.head_dim)
        k = k.view(tokens, self.num_kv_heads, self.head_dim)
        v = v.view(tokens, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rotary(q), rotary(k)
        cache.write(self.layer, meta.slot_mapping, k, v)
        if self.kernel is not None:
            out = self._attend_native(q, k, v, meta, cache)
        elif len(meta.groups) == 1 and meta.groups[0].token_rows is None:
            out = self._attend(q, meta.groups[0], cache)
        else:
            out = q.new_empty(q.shape)
            for group in meta.groups:
                assert group.token_rows is not None
                out.index_copy_(0, group.token_rows, self._attend(q, group, cache))
        return self.o(out.view(tokens, self.q_size))

    def _attend_native(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: AttentionMetadata, cache: KVCache
    ) -> torch.Tensor:
        """The paged kernel for sequences with cached context or short chunks; dense causal SDPA over the
        step's own K/V ([tokens, kv_heads, head_dim]) for the fresh prompts in `meta.dense_spans`."""
        assert self.kernel is not None
        seqs = meta.sequences
        if seqs is None:
            out = q.new_empty(q.shape)
        else:
            out = self.kernel(
                q.contiguous(), cache.keys(self.layer), cache.values(self.layer), tables=seqs.tables,
                q_starts=seqs.q_starts, q_lens=seqs.q_lens, ctx_lens=seqs.ctx_lens, window=self.window,
                scale=self.scale,
            )  # fmt: skip
        for start, length in meta.dense_spans:
            rows = slice(start, start + length)
            out[rows] = F.scaled_dot_product_attention(
                q[rows].transpose(0, 1)[None],
                k[rows].transpose(0, 1)[None],
                v[rows].transpose(0, 1)[None],
                is_causal=True,
                scale=self.scale,
                enable_gqa=self.num_heads != self.num_kv_heads,
            )[0].transpose(0, 1)
        return out

    def _attend(self, q: torch.Tensor, group: AttentionGroup, cache: KVCache) -> torch.Tensor:
        """Attention outputs [real queries of the group, heads, head_dim], in step-token order: the
        group's context gathered from the pool into padded [num_seqs, kv_len] and fed to torch SDPA."""
        if group.q_index is not None:
            q = q.index_select(0, group.q_index)
        b, heads, dim = group.num_seqs, self.num_heads, self.head_dim
        q = q.view(b, group.q_len, heads, dim).transpose(1, 2)
        k, v = cache.gather(self.layer, group.block_ids)
        k = k.view(b, group.kv_len, self.num_kv_heads, dim).transpose(1, 2)
        v = v.view(b, group.kv_len, self.num_kv_heads, dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=group.masks[self.window],
            scale=self.scale,
            enable_gqa=heads != self.num_kv_heads,
        )
        out = out.transpose(1, 2).reshape(b * group.q_len, heads, dim)
        return out if group.valid_index is None else out.index_select(0, group.valid_index)

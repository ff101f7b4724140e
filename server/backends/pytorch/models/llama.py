"""The Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) over a flat batch and the paged KV cache."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from server.backends.pytorch.arch_config import ArchConfig
from server.backends.pytorch.attention_metadata import AttentionMetadata
from server.backends.pytorch.kernels.paged_attention import PagedAttentionKernel
from server.backends.pytorch.kernels.rotary import RotaryKernel
from server.backends.pytorch.kv_cache import KVCache
from server.backends.pytorch.layers.attention import Attention
from server.backends.pytorch.layers.mlp import GatedMLP
from server.backends.pytorch.layers.rmsnorm import RMSNorm
from server.backends.pytorch.layers.rotary import RotaryEmbedding, Rotation
from server.backends.pytorch.models.weight_map import WeightTarget, load_weights


class DecoderLayer(nn.Module):
    """Pre-norm attention then pre-norm MLP, each added to the residual stream."""

    def __init__(
        self,
        config: ArchConfig,
        layer: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        kernel: PagedAttentionKernel | None,
    ) -> None:
        super().__init__()
        eps = config.rms_norm_eps
        self.input_norm = RMSNorm(config.hidden_size, eps, dtype=dtype, device=device)
        self.attn = Attention(config, layer, dtype=dtype, device=device, kernel=kernel)
        self.post_norm = RMSNorm(config.hidden_size, eps, dtype=dtype, device=device)
        self.mlp = GatedMLP(
            config.hidden_size, config.intermediate_size, bias=config.mlp_bias, dtype=dtype, device=device
        )

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None,
        rotary: Rotation,
        meta: AttentionMetadata,
        cache: KVCache,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if residual is None:
            residual, x = x, self.input_norm(x)
        else:
            x, residual = self.input_norm.add_and_norm(x, residual)
        x = self.attn(x, rotary, meta, cache)
        x, residual = self.post_norm.add_and_norm(x, residual)
        return self.mlp(x), residual


class LlamaForCausalLM(nn.Module):
    """Embeddings -> decoder layers -> final norm -> logits of the rows that sample."""

    def __init__(
        self,
        config: ArchConfig,
        *,
        dtype: torch.dtype,
        device: torch.device,
        max_positions: int,
        kernel: PagedAttentionKernel | None = None,
        rotary_kernel: RotaryKernel | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.kernel = kernel
        self.embed = nn.Parameter(
            torch.empty(config.vocab_size, config.hidden_size, dtype=dtype, device=device), False
        )
        self.layers = nn.ModuleList(
            DecoderLayer(config, i, dtype=dtype, device=device, kernel=kernel)
            for i in range(config.num_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype=dtype, device=device)
        self.lm_head = (
            self.embed
            if config.tie_word_embeddings
            else nn.Parameter(
                torch.empty(config.vocab_size, config.hidden_size, dtype=dtype, device=device), False
            )
        )
        self.rotary = RotaryEmbedding(config.head_dim, config.rope, max_positions, device, rotary_kernel)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        cache: KVCache,
        logits_rows: torch.Tensor,
    ) -> torch.Tensor:
        """float32 logits [len(logits_rows), vocab] for the listed rows of the flat batch."""
        x = F.embedding(input_ids, self.embed)
        rotary = self.rotary.lookup(positions, x.dtype)
        residual: torch.Tensor | None = None
        for layer in self.layers:
            x, residual = layer(x, residual, rotary, meta, cache)
        assert residual is not None
        x = x.index_select(0, logits_rows)
        x, _ = self.norm.add_and_norm(x, residual.index_select(0, logits_rows))
        return F.linear(x, self.lm_head).float()

    def load_weights(self, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copies Hugging Face tensors into the fused parameters. Raises LoadError naming a bad tensor."""
        load_weights(self._targets(), tensors, ignore_lm_head=self.config.tie_word_embeddings)

    def _targets(self) -> dict[str, WeightTarget]:
        c = self.config
        targets = {
            "model.embed_tokens.weight": WeightTarget(self.embed),
            "model.norm.weight": WeightTarget(self.norm.weight),
        }
        if not c.tie_word_embeddings:
            targets["lm_head.weight"] = WeightTarget(self.lm_head)
        q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, DecoderLayer)
            p, attn, mlp = f"model.layers.{i}.", layer.attn, layer.mlp
            targets[p + "input_layernorm.weight"] = WeightTarget(layer.input_norm.weight)
            targets[p + "post_attention_layernorm.weight"] = WeightTarget(layer.post_norm.weight)
            for name, start, rows in (("q", 0, q), ("k", q, kv), ("v", q + kv, kv)):
                targets.update(WeightTarget.fused(p + f"self_attn.{name}_proj", attn.qkv, start, rows))
            targets.update(WeightTarget.fused(p + "self_attn.o_proj", attn.o))
            if attn.q_norm is not None and attn.k_norm is not None:
                targets[p + "self_attn.q_norm.weight"] = WeightTarget(attn.q_norm.weight)
                targets[p + "self_attn.k_norm.weight"] = WeightTarget(attn.k_norm.weight)
            inter = c.intermediate_size
            targets.update(WeightTarget.fused(p + "mlp.gate_proj", mlp.gate_up, 0, inter))
            targets.update(WeightTarget.fused(p + "mlp.up_proj", mlp.gate_up, inter, inter))
            targets.update(WeightTarget.fused(p + "mlp.down_proj", mlp.down))
        return targets

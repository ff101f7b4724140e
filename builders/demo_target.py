"""`hangar build demo`: the small demo LLM that `make serve` and the tests serve: a seeded tiny Llama
checkpoint and a byte-level BPE tokenizer trained on builders/data/corpus.txt, in a few seconds on a CPU."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from builders.errors import BuildInputError
from builders.owned_config import OwnedConfig
from builders.pbtxt_fields import quote
from builders.pytorch_version import PyTorchVersionTarget
from builders.target import BuildContext, Step
from builders.tokenizer_training import CORPUS_RESOURCE, corpus_sha256, write_tokenizer

VOCAB_SIZE = 512
SIZES: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5,
    "initializer_range": 0.1,
    "tie_word_embeddings": False,
}
"""A Llama in miniature (GQA, RoPE, SwiGLU); a wide initializer makes greedy output vary with the seed."""
_MAX_SEED = 2**63 - 1

CONFIG_TEMPLATE = """\
# The demo LLM: a tiny seeded Llama with a byte-level BPE tokenizer, written by `hangar build demo`
# (`make serve` serves it). The pytorch backend fills in the LLM inputs and outputs. A rebuild rewrites
# only backend and model_transaction_policy; everything else in this file is yours to change.
name: {name}
backend: "pytorch"
model_transaction_policy {{ decoupled: true }}
# A small fixed KV pool (1024 blocks of 16 tokens, 8 MiB) instead of a share of the machine's memory.
parameters {{ key: "num_blocks" value: {{ string_value: "1024" }} }}
"""


class DemoTarget(PyTorchVersionTarget):
    name = "demo"

    def __init__(self, model: str, seed: int) -> None:
        self.model = model
        self.seed = seed

    def check(self) -> None:
        if not 0 <= self.seed <= _MAX_SEED:
            raise BuildInputError(f"--seed must be in [0, {_MAX_SEED}], got {self.seed}")

    def steps(self) -> list[Step]:
        return [
            Step(
                f"train a {VOCAB_SIZE}-token byte-level BPE tokenizer on builders/{CORPUS_RESOURCE}",
                _tokenizer,
            ),
            Step(f"initialise a tiny Llama checkpoint with seed {self.seed} (safetensors)", self._weights),
        ]

    def _weights(self, ctx: BuildContext) -> None:
        write_llama_checkpoint(ctx.staging, self.seed)

    def owned_config(self) -> OwnedConfig:
        return OwnedConfig(
            backend="pytorch", decoupled=True, template=CONFIG_TEMPLATE.format(name=quote(self.model))
        )

    def source(self) -> Mapping[str, Any]:
        return {"kind": "demo", "corpus": f"builders/{CORPUS_RESOURCE}", "corpus_sha256": corpus_sha256()}

    def parameters(self) -> Mapping[str, Any]:
        return {"seed": self.seed, "architecture": "LlamaForCausalLM", "vocab_size": VOCAB_SIZE, **SIZES}


def write_llama_checkpoint(directory: Path, seed: int) -> None:
    """config.json, generation_config.json and model.safetensors of a Llama with seeded normal weights.

    Written directly, not through transformers' config and model classes: importing and constructing those
    costs seconds, the files are plain JSON and safetensors. The tensors come in a fixed order from one
    seeded generator, under the names transformers' Llama uses.
    """
    gen = torch.Generator().manual_seed(seed)
    tensors = {name: _init(shape, name, gen) for name, shape in _llama_shapes().items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    _write_json(directory / "config.json", llama_config())
    _write_json(
        directory / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2, "use_cache": True}
    )


def llama_config() -> dict[str, Any]:
    """config.json as transformers' LlamaConfig writes it (rope both ways: transformers 5 and 4.x read it)."""
    rope_theta = 10000.0
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        **SIZES,
        "head_dim": SIZES["hidden_size"] // SIZES["num_attention_heads"],
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "rope_theta": rope_theta,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "dtype": "float32",
        "use_cache": True,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _llama_shapes() -> dict[str, tuple[int, ...]]:
    h, inter, vocab = SIZES["hidden_size"], SIZES["intermediate_size"], VOCAB_SIZE
    head_dim = h // SIZES["num_attention_heads"]
    kv = SIZES["num_key_value_heads"] * head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(SIZES["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, h),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (inter, h),
            p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        }
    return shapes | {"model.norm.weight": (h,), "lm_head.weight": (vocab, h)}


def _init(shape: tuple[int, ...], name: str, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(shape, generator=gen, dtype=torch.float32)
    if name.endswith("norm.weight"):
        return 1.0 + 0.1 * noise  # not exactly 1, so a loader that skips norms changes the output
    return SIZES["initializer_range"] * noise


def _tokenizer(ctx: BuildContext) -> None:
    write_tokenizer(ctx.staging, VOCAB_SIZE, SIZES["max_position_embeddings"])

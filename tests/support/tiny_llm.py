"""Tiny seeded-random Llama-family checkpoints (Llama, Mistral, Qwen2, Qwen3) with a byte-level BPE
tokenizer, written the way a user's Hugging Face checkpoint directory is, plus a transformers reference.

Use from tests:
    path = tiny_llm(tmp_path_factory, "qwen3")           # cached per session and per arguments
    path = build_tiny_llm(tmp_path / "m", "llama", seed=1, num_hidden_layers=3)   # uncached
    want = hf_greedy(path, [[1, 5, 9]], max_new_tokens=8)  # transformers generate(do_sample=False)
    want = hf_greedy(path, [[1, 5, 9]], 8, dtype=torch.bfloat16)
    bad = off_argmax_steps(path, [1, 5, 9], got, dtype=torch.bfloat16)  # [] if all are near-argmax

Each architecture exercises its own differences: llama uses llama3 rope scaling, mistral a sliding
window of 24, qwen2 q/k/v biases and linear rope scaling, qwen3 q/k norms and tied embeddings.
Norm weights and biases are randomised too, so a loader that skips them changes the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from transformers import PretrainedConfig

from tests.support.tiny_tokenizer import byte_level_bpe

ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")
EOS_ID = 2
"""`</s>` in the tokenizer; `<s>` (1) is bos and is prepended to encoded prompts."""

_SIZES: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "initializer_range": 0.08,
    "bos_token_id": 1,
    "eos_token_id": EOS_ID,
    "pad_token_id": 0,
}
_ARCH: dict[str, tuple[type[PretrainedConfig], dict[str, Any]]] = {
    "llama": (
        transformers.LlamaConfig,
        {
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            }
        },
    ),
    "mistral": (transformers.MistralConfig, {"sliding_window": 24}),
    "qwen2": (
        transformers.Qwen2Config,
        {"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}},
    ),
    "qwen3": (transformers.Qwen3Config, {"head_dim": 16, "tie_word_embeddings": True}),
}


def tiny_config(arch: str, vocab_size: int, **overrides: Any) -> PretrainedConfig:
    """The transformers config of a tiny `arch` model; `overrides` replace any field."""
    if arch not in _ARCH:
        raise ValueError(f"unknown tiny architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    cls, extra = _ARCH[arch]
    return cls(**{**_SIZES, **extra, "vocab_size": vocab_size, **overrides})


def build_tiny_llm(
    directory: Path, arch: str = "llama", *, seed: int = 0, vocab_size: int = 400, **overrides: Any
) -> Path:
    """Writes config.json, generation_config.json, model.safetensors and tokenizer files; returns directory.

    The model's vocabulary is the tokenizer's (at most `vocab_size`); weights are seeded by `seed`.
    """
    tokenizer = byte_level_bpe(vocab_size)
    config = tiny_config(arch, len(tokenizer), **overrides)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(1.0, 0.2)
            elif name.endswith(".bias"):
                param.normal_(0.0, 0.1)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


_CACHE: dict[tuple[Path, str, int, int, tuple[tuple[str, Any], ...]], Path] = {}


def tiny_llm(
    tmp_path_factory: pytest.TempPathFactory,
    arch: str = "llama",
    *,
    seed: int = 0,
    vocab_size: int = 400,
    **overrides: Any,
) -> Path:
    """`build_tiny_llm` once per pytest session and argument set; treat the directory as read-only."""
    key = (tmp_path_factory.getbasetemp(), arch, seed, vocab_size, tuple(sorted(overrides.items())))
    if key not in _CACHE:
        directory = tmp_path_factory.mktemp(f"tiny-{arch}")
        _CACHE[key] = build_tiny_llm(directory, arch, seed=seed, vocab_size=vocab_size, **overrides)
    return _CACHE[key]


_MODELS: dict[tuple[Path, torch.dtype, str], Any] = {}


def _hf_model(directory: Path, dtype: torch.dtype, device: str) -> Any:
    key = (directory, dtype, device)
    if key not in _MODELS:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype)
        _MODELS[key] = model.eval().to(device)
    return _MODELS[key]


def hf_greedy(
    directory: Path, prompts: Sequence[Sequence[int]], max_new_tokens: int, dtype: torch.dtype = torch.float32
) -> list[list[int]]:
    """transformers `generate(do_sample=False)` for each prompt on its own (no padding), never stopping
    early at eos: the reference our engine must match token for token."""
    model = _hf_model(directory, dtype, "cpu")
    outputs = []
    for prompt in prompts:
        ids = torch.tensor([list(prompt)])
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        outputs.append(out[0, ids.shape[1] :].tolist())
    return outputs


def off_argmax_steps(
    directory: Path,
    prompt: Sequence[int],
    outputs: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    tolerance: float = 0.02,
) -> list[int]:
    """Steps where `outputs[i]` is not transformers' argmax for prompt + outputs[:i], up to `tolerance`
    times the largest logit magnitude: the greedy check for reduced precision, where rounding can flip
    near-ties so exact token equality is too strict. Empty when every token passes."""
    key = (directory, dtype) if device == "cpu" else None
    model = _MODELS.get(key) if key else None
    if model is None:
        model = (
            transformers.AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype).eval().to(device)
        )
        if key:
            _MODELS[key] = model
    ids = torch.tensor([[*prompt, *outputs]], device=device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float().cpu()
    chosen = logits.gather(1, torch.tensor(list(outputs))[:, None])[:, 0]
    margin = tolerance * logits.abs().amax(-1) + 1e-3
    return torch.nonzero(chosen < logits.amax(-1) - margin).flatten().tolist()

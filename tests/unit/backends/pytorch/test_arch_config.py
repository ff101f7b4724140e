"""ArchConfig: what each architecture's config.json turns into, and the errors for what we cannot run."""

from __future__ import annotations

from typing import Any

import pytest

from server.backends.pytorch.arch_config import SUPPORTED_ARCHITECTURES, ArchConfig, RopeConfig
from server.errors import LoadError
from tests.support.tiny_llm import tiny_config

NAMES = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2", "qwen3": "Qwen3"}


def hf_dict(arch: str, **overrides: Any) -> dict[str, Any]:
    """config.json as save_pretrained writes it."""
    return {**tiny_config(arch, 300, **overrides).to_dict(), "architectures": [f"{NAMES[arch]}ForCausalLM"]}


def test_llama_sizes_rope_scaling_and_eos() -> None:
    c = ArchConfig.from_hf(hf_dict("llama"))
    assert (c.architecture, c.vocab_size, c.hidden_size, c.num_layers) == ("LlamaForCausalLM", 300, 64, 2)
    assert (c.num_heads, c.num_kv_heads, c.head_dim) == (4, 2, 16)
    assert (
        c.rope.scaling == "llama3" and c.rope.factor == 4.0 and c.rope.original_max_position_embeddings == 64
    )
    assert c.eos_token_ids == (2,)
    assert not (c.qkv_bias or c.qk_norm or c.tie_word_embeddings)
    assert c.sliding_windows == (None, None)


def test_per_architecture_differences() -> None:
    assert ArchConfig.from_hf(hf_dict("mistral")).sliding_windows == (24, 24)
    qwen2 = ArchConfig.from_hf(hf_dict("qwen2"))
    assert qwen2.qkv_bias and not qwen2.o_bias and qwen2.rope.scaling == "linear"
    qwen3 = ArchConfig.from_hf(hf_dict("qwen3"))
    assert qwen3.qk_norm and qwen3.tie_word_embeddings and not qwen3.qkv_bias


def test_qwen_sliding_window_applies_from_max_window_layers() -> None:
    d = hf_dict("qwen2", use_sliding_window=True, sliding_window=8, max_window_layers=1, num_hidden_layers=3)
    assert ArchConfig.from_hf(d).sliding_windows == (None, 8, 8)


def test_transformers_4_rope_fields_are_read() -> None:
    d = {"rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 3.0}}
    rope = RopeConfig.from_hf(d, 2048)
    assert (rope.theta, rope.scaling, rope.factor) == (5e5, "linear", 3.0)


def test_generation_config_eos_wins() -> None:
    assert ArchConfig.from_hf(hf_dict("llama"), eos_override=[7, 8]).eos_token_ids == (7, 8)


def test_unsupported_architecture_names_it_and_lists_supported() -> None:
    with pytest.raises(LoadError) as e:
        ArchConfig.from_hf({**hf_dict("llama"), "architectures": ["GPT2LMHeadModel"]})
    assert "GPT2LMHeadModel" in str(e.value)
    assert all(name in str(e.value) for name in SUPPORTED_ARCHITECTURES)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"architectures": None}, "architectures"),
        ({"rope_parameters": {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4}}, "yarn"),
        ({"hidden_act": "gelu"}, "gelu"),
        ({"num_attention_heads": 4, "num_key_value_heads": 3}, "num_key_value_heads"),
        ({"hidden_size": -1}, "hidden_size"),
        ({"eos_token_id": "x"}, "eos_token_id"),
    ],
)
def test_invalid_configs_name_the_problem(override: dict[str, Any], needle: str) -> None:
    with pytest.raises(LoadError, match=needle):
        ArchConfig.from_hf({**hf_dict("llama"), **override})


def test_unknown_layer_type_is_an_error() -> None:
    with pytest.raises(LoadError, match="chunked_attention"):
        ArchConfig.from_hf(hf_dict("qwen3", layer_types=["full_attention", "chunked_attention"]))

"""builders/owned_config: a build sets only the config.pbtxt fields it owns and keeps the user's bytes."""

from __future__ import annotations

from builders.owned_config import OwnedConfig, merge_config, new_config_text
from server.protocol.config_text import parse_config_text

TRT = OwnedConfig(
    backend="tensorrtllm",
    decoupled=True,
    parameters={"gpt_model_path": "engine", "tokenizer_dir": "tokenizer"},
    default_parameters={"kv_cache_free_gpu_mem_fraction": "0.9"},
)
USER = """\
# my notes stay
name: "m"
platform: "onnxruntime_onnx"  # wrong backend, replaced in place
max_batch_size: 8
model_transaction_policy {
  decoupled: true
}
parameters { key: "gpt_model_path" value: { string_value: "/old/engine" } }
parameters: { key: "kv_cache_free_gpu_mem_fraction" value { string_value: "0.5" } }  # tuned by hand
parameters [ { key: "tokenizer_dir" value { string_value: "t" } },
             { key: "mine" value { string_value: "x" } } ]
instance_group [ { count: 2, kind: KIND_CPU } ]
"""


def _params(text: str) -> dict[str, str]:
    return {k: v["string_value"] for k, v in parse_config_text(text, "t").get("parameters", {}).items()}


def test_only_owned_fields_change() -> None:
    merged = merge_config(USER, TRT)
    d = parse_config_text(merged, "t")
    assert d["backend"] == "tensorrtllm" and "platform" not in d
    assert d["model_transaction_policy"] == {"decoupled": True}
    assert d["max_batch_size"] == 8 and d["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    assert _params(merged) == {
        "gpt_model_path": "engine",  # owned: rewritten
        "tokenizer_dir": "tokenizer",  # owned, inside a list with a user entry: split out
        "kv_cache_free_gpu_mem_fraction": "0.5",  # a default: the user's value wins
        "mine": "x",
    }
    assert merged.startswith("# my notes stay\n")
    assert 'backend: "tensorrtllm"  # wrong backend, replaced in place\n' in merged
    assert "# tuned by hand" in merged
    assert "model_transaction_policy {\n  decoupled: true\n}" in merged  # equal value: not rewritten


def test_merging_again_changes_nothing() -> None:
    merged = merge_config(USER, TRT)
    assert merge_config(merged, TRT) is merged


def test_a_file_already_right_is_returned_unchanged() -> None:
    text = 'name: "m"\nbackend: "pytorch"\nmodel_transaction_policy {\n  decoupled: true\n}\n'
    assert merge_config(text, OwnedConfig(backend="pytorch", decoupled=True)) is text


def test_new_file_gets_a_header_the_name_and_the_owned_fields_in_order() -> None:
    text = merge_config(new_config_text("m", "tensorrtllm", TRT), TRT)
    assert text.startswith("# Written by `hangar build tensorrtllm`")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines[:3] == [
        'name: "m"',
        'backend: "tensorrtllm"',
        "model_transaction_policy { decoupled: true }",
    ]
    assert _params(text) == {
        "gpt_model_path": "engine",
        "tokenizer_dir": "tokenizer",
        "kv_cache_free_gpu_mem_fraction": "0.9",
    }


def test_platform_replaces_backend_and_a_template_is_used_as_is() -> None:
    owned = OwnedConfig(platform="onnxruntime_onnx", template='name: "x"\nplatform: "onnxruntime_onnx"\n')
    assert merge_config(new_config_text("x", "t", owned), owned) == owned.template
    merged = merge_config('name: "x"\nbackend: "python"\n', owned)
    assert merged == 'name: "x"\nplatform: "onnxruntime_onnx"\n'


def test_text_without_a_final_newline_gets_one_when_fields_are_appended() -> None:
    assert merge_config('name: "x"', OwnedConfig(backend="pytorch")) == 'name: "x"\nbackend: "pytorch"\n'

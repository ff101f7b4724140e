"""Loading Hugging Face checkpoint directories: single file, shards, and every broken-file error."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from server.backends.pytorch.checkpoint import Checkpoint
from server.backends.pytorch.runner import PyTorchModelRunner
from server.errors import ConfigError, LoadError
from tests.unit.backends.pytorch.driver import PagedDriver, greedy_seqs


@pytest.fixture
def copy(llama_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny llama to break."""
    return Path(shutil.copytree(llama_dir, tmp_path / "model"))


def load(path: Path) -> PyTorchModelRunner:
    return PyTorchModelRunner.from_checkpoint(path, num_blocks=8, block_size=4)


def rewrite_weights(path: Path, edit: dict[str, torch.Tensor | None]) -> None:
    tensors = load_file(str(path / "model.safetensors"))
    for name, value in edit.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    save_file(tensors, str(path / "model.safetensors"))


def test_open_reads_config_and_weights(llama_dir: Path) -> None:
    ckpt = Checkpoint.open(llama_dir)
    assert ckpt.config.architecture == "LlamaForCausalLM"
    names = {name for name, _ in ckpt.tensors()}
    assert "model.embed_tokens.weight" in names and "model.layers.1.mlp.down_proj.weight" in names


def test_sharded_checkpoint_loads_and_matches_single_file(llama_dir: Path, tmp_path: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(str(llama_dir), dtype=torch.float32)
    model.save_pretrained(str(tmp_path / "sharded"), max_shard_size="60KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert len(Checkpoint.open(tmp_path / "sharded").weight_files) > 2
    prompts = [[1, 40, 41, 42, 43]]
    outs = [
        PagedDriver(load(p)).run(greedy_seqs(prompts, 6))[0].outputs
        for p in (llama_dir, tmp_path / "sharded")
    ]
    assert outs[0] == outs[1]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="does not exist"):
        load(tmp_path / "nope")


def test_missing_config(copy: Path) -> None:
    (copy / "config.json").unlink()
    with pytest.raises(LoadError, match=re.escape("config.json is missing")):
        load(copy)


def test_invalid_config_json(copy: Path) -> None:
    (copy / "config.json").write_text("{not json")
    with pytest.raises(LoadError, match=re.escape("config.json is not valid JSON")):
        load(copy)


def test_unsupported_architecture(copy: Path) -> None:
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "architectures": ["FalconForCausalLM"]}))
    with pytest.raises(LoadError, match=r"FalconForCausalLM.*supported: LlamaForCausalLM"):
        load(copy)


def test_no_weights_hints_at_pytorch_bin(copy: Path) -> None:
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    with pytest.raises(LoadError, match=r"neither model.safetensors.*pytorch_model.bin"):
        load(copy)


def test_missing_shard_is_named(llama_dir: Path, tmp_path: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(str(llama_dir), dtype=torch.float32)
    model.save_pretrained(str(tmp_path / "s"), max_shard_size="60KB")
    shard = sorted((tmp_path / "s").glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(LoadError, match=shard.name):
        load(tmp_path / "s")


def test_corrupt_weight_file_is_named(copy: Path) -> None:
    (copy / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage")
    with pytest.raises(LoadError, match=re.escape("model.safetensors")):
        load(copy)


def test_truncated_weight_file_is_named(copy: Path) -> None:
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match=re.escape("model.safetensors")):
        load(copy)


def test_wrong_shape_names_tensor_and_shapes(copy: Path) -> None:
    rewrite_weights(copy, {"model.layers.0.self_attn.k_proj.weight": torch.zeros(16, 64)})
    with pytest.raises(
        LoadError,
        match=re.escape("'model.layers.0.self_attn.k_proj.weight' has shape [16, 64], expected [32, 64]"),
    ):
        load(copy)


def test_missing_tensor_is_named(copy: Path) -> None:
    rewrite_weights(copy, {"model.layers.1.mlp.up_proj.weight": None})
    with pytest.raises(LoadError, match=re.escape("missing tensors: model.layers.1.mlp.up_proj.weight")):
        load(copy)


def test_unexpected_tensor_is_named(copy: Path) -> None:
    rewrite_weights(copy, {"model.layers.0.self_attn.o_proj.bias": torch.zeros(64)})
    with pytest.raises(
        LoadError, match=re.escape("'model.layers.0.self_attn.o_proj.bias' is not part of this architecture")
    ):
        load(copy)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"dtype": "float16"}, "float16 is not supported on CPU"),
        ({"dtype": "int8"}, "unknown dtype 'int8'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"max_model_len": 5000}, "max_model_len 5000"),
        ({"block_size": 0}, "block_size"),
        ({"num_blocks": 4, "kv_cache_memory_fraction": 0.1}, "not both"),
        ({"kv_cache_memory_fraction": 1.5}, "kv_cache_memory_fraction"),
        ({"attention_backend": "flash"}, "attention_backend 'flash'"),
    ],
)
def test_invalid_options_name_the_value(llama_dir: Path, options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        PyTorchModelRunner.from_checkpoint(llama_dir, **options)  # type: ignore[arg-type]


def test_memory_fraction_sizes_the_pool(llama_dir: Path) -> None:
    runner = PyTorchModelRunner.from_checkpoint(llama_dir, kv_cache_memory_fraction=0.0005, block_size=16)
    per_block = 2 * 2 * 16 * 2 * 16 * 4  # K and V, 2 layers, 16 tokens, 2 kv heads, head_dim 16, float32
    assert runner.num_blocks > 10
    assert runner.cache.pool.numel() * 4 == (runner.num_blocks + 1) * per_block

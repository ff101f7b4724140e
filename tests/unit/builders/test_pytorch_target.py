"""`hangar build pytorch`: a Hugging Face checkpoint as a pytorch-backend version, smoke-tested on Hangar's
engine before the drop; every unusable input named before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from builders.manifest import verify_manifest
from server.app.main import main
from server.protocol.config_text import parse_config_text
from tests.unit.builders.checkpoints import copy_checkpoint


def _build(checkpoint: Path, repo: Path, *extra: str) -> int:
    args = ["build", "pytorch", "--checkpoint", str(checkpoint), "--repository", str(repo), "--model", "m"]
    return main([*args, *extra])


def test_a_checkpoint_becomes_a_version_in_another_dtype(
    llama_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build(llama_checkpoint, tmp_path, "--dtype", "bfloat16") == 0
    version = tmp_path / "m" / "1"
    with safe_open(str(version / "model.safetensors"), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118
    assert json.loads((version / "config.json").read_text())["dtype"] == "bfloat16"
    assert (version / "tokenizer.json").read_bytes() == (llama_checkpoint / "tokenizer.json").read_bytes()
    config = parse_config_text((tmp_path / "m" / "config.pbtxt").read_text(), "t")
    assert config["backend"] == "pytorch" and config["model_transaction_policy"] == {"decoupled": True}
    assert verify_manifest(version) == []
    assert "smoke test: 8 tokens generated" in capsys.readouterr().out


def test_a_sharded_checkpoint_is_copied_with_its_index(llama_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = copy_checkpoint(llama_checkpoint, tmp_path / "ckpt")
    tensors = load_file(str(ckpt / "model.safetensors"))
    (ckpt / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(ckpt / shard), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    (ckpt / "README.md").write_text("not copied")
    (tmp_path / "repo").mkdir()
    assert _build(ckpt, tmp_path / "repo") == 0
    version = tmp_path / "repo" / "m" / "1"
    assert sorted(p.name for p in version.iterdir()) == sorted(
        [*shards, "model.safetensors.index.json", "config.json", "generation_config.json",
         "tokenizer.json", "tokenizer_config.json", "hangar-manifest.json"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"architectures": ["GPT2LMHeadModel"]}, "unsupported architecture GPT2LMHeadModel"),
        ({"hidden_act": "gelu"}, "unsupported hidden_act 'gelu'"),
        ("config.json", "config.json is missing"),
        ("tokenizer.json", "has no tokenizer"),
        ("model.safetensors", "has no weights"),
    ],
)
def test_an_unusable_checkpoint_is_named_before_any_work(
    llama_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: object, error: str
) -> None:
    if isinstance(change, dict):
        ckpt = copy_checkpoint(llama_checkpoint, tmp_path / "ckpt", **change)
    else:
        ckpt = copy_checkpoint(llama_checkpoint, tmp_path / "ckpt")
        (ckpt / str(change)).unlink()
    (tmp_path / "repo").mkdir()
    assert _build(ckpt, tmp_path / "repo") == 2
    err = capsys.readouterr().err
    assert error in err and str(ckpt) in err
    assert list((tmp_path / "repo").iterdir()) == []


def test_torch_bin_weights_get_a_conversion_hint(
    llama_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = copy_checkpoint(llama_checkpoint, tmp_path / "ckpt")
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    assert _build(ckpt, tmp_path) == 2
    assert "convert pytorch_model.bin to safetensors first" in capsys.readouterr().err


def test_weights_that_do_not_load_fail_the_smoke_test_and_drop_nothing(
    llama_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = copy_checkpoint(llama_checkpoint, tmp_path / "ckpt")
    tensors = load_file(str(ckpt / "model.safetensors"))
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "repo").mkdir()
    assert _build(ckpt, tmp_path / "repo") == 1
    assert "down_proj" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "repo" / "m").iterdir()) == []

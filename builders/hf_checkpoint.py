"""A Hugging Face checkpoint directory as a build's input: its config, weights and tokenizer files,
each missing piece reported by name before any work starts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builders.errors import BuildInputError
from builders.manifest import sha256_file

CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
TORCH_BIN, TORCH_BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
_TOKENIZER_CORE = ("tokenizer.json", "tokenizer.model", "vocab.json")
"""At least one of these must exist: the others only configure a tokenizer."""


@dataclass(frozen=True)
class HFCheckpoint:
    path: Path
    config: dict[str, Any]
    weights: tuple[str, ...]
    """Weight file names (shards listed by the index, in order)."""
    weight_index: str | None
    tokenizer_files: tuple[str, ...]

    @property
    def architectures(self) -> list[str]:
        archs = self.config.get("architectures")
        return [str(a) for a in archs] if isinstance(archs, list) else []

    @property
    def weight_bytes(self) -> int:
        return sum((self.path / name).stat().st_size for name in self.weights)

    def manifest_source(self) -> dict[str, Any]:
        """What the manifest records about where a version came from."""
        return {
            "kind": "huggingface-checkpoint",
            "path": str(self.path.resolve()),
            "architectures": self.architectures,
            "config_sha256": sha256_file(self.path / CONFIG),
        }

    @property
    def small_files(self) -> tuple[str, ...]:
        """config.json, generation_config.json when present, and the tokenizer files."""
        generation = (GENERATION_CONFIG,) if (self.path / GENERATION_CONFIG).is_file() else ()
        return (CONFIG, *generation, *self.tokenizer_files)


def inspect_checkpoint(path: Path, *, allow_torch_bin: bool) -> HFCheckpoint:
    """Reads config.json and finds the weights and the tokenizer.

    Raises:
        BuildInputError: the directory, config.json, the weights (or a shard), or the tokenizer is missing.
    """
    if not path.is_dir():
        raise BuildInputError(f"checkpoint directory {path} does not exist")
    config = read_json(path / CONFIG, what="the model config")
    weights, index = _weights(path, allow_torch_bin)
    tokenizer = tuple(name for name in TOKENIZER_FILES if (path / name).is_file())
    if not any(name in tokenizer for name in _TOKENIZER_CORE):
        raise BuildInputError(
            f"checkpoint {path} has no tokenizer (none of {', '.join(_TOKENIZER_CORE)}); "
            "copy the model's tokenizer files next to its weights"
        )
    return HFCheckpoint(path, config, weights, index, tokenizer)


def read_json(file: Path, *, what: str) -> dict[str, Any]:
    if not file.is_file():
        raise BuildInputError(f"{file} is missing ({what})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BuildInputError(f"{file} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise BuildInputError(f"{file} must hold a JSON object, got {type(data).__name__}")
    return data


def _weights(path: Path, allow_torch_bin: bool) -> tuple[tuple[str, ...], str | None]:
    kinds = [(SAFETENSORS, SAFETENSORS_INDEX)] + ([(TORCH_BIN, TORCH_BIN_INDEX)] if allow_torch_bin else [])
    for single, index in kinds:
        if (path / single).is_file():
            return (single,), None
        if (path / index).is_file():
            return _shards(path, index), index
    wanted = " or ".join(f"{s} / {i}" for s, i in kinds)
    found = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".safetensors"))
    hint = f" (found {', '.join(found)})" if found else ""
    if not allow_torch_bin and (path / TORCH_BIN).exists():
        hint += "; convert pytorch_model.bin to safetensors first"
    raise BuildInputError(f"checkpoint {path} has no weights: expected {wanted}{hint}")


def _shards(path: Path, index: str) -> tuple[str, ...]:
    weight_map = read_json(path / index, what="the weight index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise BuildInputError(f"{path / index} has no 'weight_map' object")
    shards = tuple(dict.fromkeys(str(v) for v in weight_map.values()))
    for name in shards:
        if Path(name).is_absolute() or ".." in Path(name).parts or "/" in name:
            raise BuildInputError(f"{path / index} names a shard outside the checkpoint: {name}")
        if not (path / name).is_file():
            raise BuildInputError(f"weight shard {path / name} (listed in {index}) is missing")
    return shards

"""A Hugging Face checkpoint directory: config.json, generation_config.json and safetensors weights."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from server.backends.pytorch.arch_config import ArchConfig
from server.errors import LoadError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass(frozen=True)
class Checkpoint:
    """The parsed config and the weight files of one checkpoint directory."""

    path: Path
    config: ArchConfig
    weight_files: tuple[Path, ...]

    @classmethod
    def open(cls, path: Path) -> Checkpoint:
        """Reads the config and finds the weights (a single file or shards listed by an index).

        Raises:
            LoadError: naming the missing or invalid file, or the unsupported architecture.
        """
        path = Path(path)
        if not path.is_dir():
            raise LoadError(f"checkpoint directory {path} does not exist")
        config = _read_json(path / "config.json", required=True)
        generation = _read_json(path / "generation_config.json", required=False)
        arch = ArchConfig.from_hf(config, eos_override=generation.get("eos_token_id"))
        return cls(path=path, config=arch, weight_files=_weight_files(path))

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields (name, tensor) for every stored weight, as stored (on the CPU), one file at a time.

        Raises:
            LoadError: a weight file that cannot be read (named).
        """
        for file in self.weight_files:
            yield from _read_file(file)


def _read_file(file: Path) -> Iterator[tuple[str, torch.Tensor]]:
    try:
        handle = safe_open(str(file), framework="pt", device="cpu")
        names = list(handle.keys())
    except (SafetensorError, OSError) as e:
        raise LoadError(f"cannot read weight file {file}: {e}") from e
    for name in names:
        try:
            tensor = handle.get_tensor(name)
        except (SafetensorError, OSError, RuntimeError) as e:
            raise LoadError(f"cannot read tensor '{name}' from weight file {file}: {e}") from e
        yield name, tensor


def _read_json(file: Path, *, required: bool) -> dict[str, Any]:
    if not file.is_file():
        if required:
            raise LoadError(f"{file} is missing: a Hugging Face checkpoint needs it")
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoadError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise LoadError(f"{file} must hold a JSON object, got {type(data).__name__}")
    return data


def _weight_files(path: Path) -> tuple[Path, ...]:
    single, index = path / SINGLE_FILE, path / INDEX_FILE
    if single.is_file():
        return (single,)
    if not index.is_file():
        others = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        hint = f" (found {', '.join(others)}: only safetensors are supported)" if others else ""
        raise LoadError(f"{path} has neither {SINGLE_FILE} nor {INDEX_FILE}{hint}")
    weight_map = _read_json(index, required=True).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise LoadError(f"{index} has no 'weight_map' object")
    files: list[Path] = []
    for name in dict.fromkeys(str(v) for v in weight_map.values()):
        file = path / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise LoadError(f"{index} names a shard outside the checkpoint: {name}")
        if not file.is_file():
            raise LoadError(f"weight shard {file} listed in {index.name} is missing")
        files.append(file)
    return tuple(files)

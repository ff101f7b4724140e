"""Hugging Face checkpoint dirs for builder tests, written in milliseconds by the demo builder's pieces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from builders.demo_target import SIZES, VOCAB_SIZE, write_llama_checkpoint
from builders.tokenizer_training import write_tokenizer


def demo_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A complete tiny Llama checkpoint (config, weights, tokenizer) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    write_tokenizer(directory, VOCAB_SIZE, SIZES["max_position_embeddings"])
    write_llama_checkpoint(directory, seed)
    return directory


def copy_checkpoint(source: Path, directory: Path, **config_changes: Any) -> Path:
    """A copy of `source` with config.json fields changed (None deletes a field)."""
    shutil.copytree(source, directory)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    config_path.write_text(json.dumps(config))
    return directory

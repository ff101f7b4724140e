"""Copying checkpoint files into a staging dir, and rewriting safetensors weights in another dtype."""

from __future__ import annotations

import json
from pathlib import Path

from builders.reporter import Reporter

_CHUNK = 16 << 20
DTYPES = ("float32", "bfloat16", "float16")


def copy_files(src: Path, dst: Path, names: tuple[str, ...], reporter: Reporter, desc: str) -> None:
    """Copy `src/name` to `dst/name` for each name, with one byte-counting progress bar."""
    total = sum((src / n).stat().st_size for n in names)
    with reporter.bar(total, desc, byte_units=True) as bar:
        for name in names:
            with (src / name).open("rb") as fin, (dst / name).open("wb") as fout:
                while chunk := fin.read(_CHUNK):
                    fout.write(chunk)
                    bar.update(len(chunk))


def convert_weights(src: Path, dst: Path, names: tuple[str, ...], dtype: str, reporter: Reporter) -> int:
    """Rewrite each safetensors file with its floating-point tensors cast to `dtype`; returns total bytes."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    target = getattr(torch, dtype)
    total = 0
    with reporter.bar(len(names), f"convert to {dtype}", unit="file") as bar:
        for name in names:
            with safe_open(str(src / name), framework="pt", device="cpu") as f:
                metadata = f.metadata() or {}
                tensors = {}
                for key in f.keys():  # noqa: SIM118 - a safetensors handle is not a dict
                    tensor = f.get_tensor(key)
                    tensors[key] = (tensor.to(target) if tensor.is_floating_point() else tensor).contiguous()
            save_file(tensors, str(dst / name), metadata={**metadata, "format": "pt"})
            total += sum(t.numel() * t.element_size() for t in tensors.values())
            bar.update(1)
    return total


def set_config_dtype(config_path: Path, dtype: str) -> None:
    """Record the new dtype in config.json (`dtype`, and `torch_dtype` where the file uses it)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["dtype"] = dtype
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def set_index_size(index_path: Path, total_bytes: int) -> None:
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index.setdefault("metadata", {})["total_size"] = total_bytes
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")

"""Device and dtype names as backend parameters spell them, resolved against what this machine has."""

from __future__ import annotations

import torch

from server.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(name: str) -> torch.device:
    """ "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from e
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device '{name}' (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' requested but CUDA is not available")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' requested but only {torch.cuda.device_count()} GPU(s) exist")
    return device


def resolve_dtype(name: str, checkpoint_dtype: str | None, device: torch.device) -> torch.dtype:
    """ "auto": float32 on CPU; on CUDA the checkpoint's half type, else bfloat16. float16 needs CUDA."""
    if name == "auto":
        if device.type == "cpu":
            return torch.float32
        stored = DTYPES.get(checkpoint_dtype or "")
        return stored if stored in (torch.float16, torch.bfloat16) else torch.bfloat16
    dtype = DTYPES.get(name)
    if dtype is None:
        raise ConfigError(f"unknown dtype '{name}' (use auto, {', '.join(DTYPES)})")
    if dtype == torch.float16 and device.type == "cpu":
        raise ConfigError("dtype float16 is not supported on CPU (use float32 or bfloat16)")
    return dtype

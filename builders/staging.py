"""Hidden staging directories inside a model directory: naming, finding, removing."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

STAGING_PREFIX = ".staging-"
"""The repository scanner ignores names starting with a dot, so a staging dir is never a version."""


def new_staging_name(suffix: str = "") -> str:
    """`.staging-<pid>-<random>[-suffix]`: the pid says which process wrote it."""
    name = f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    return f"{name}-{suffix}" if suffix else name


def staging_pid(path: Path) -> int | None:
    head = path.name[len(STAGING_PREFIX) :].split("-", 1)[0]
    return int(head) if path.name.startswith(STAGING_PREFIX) and head.isdigit() else None


def staging_dirs(model_dir: Path) -> list[Path]:
    """Every staging entry of the model, sorted (dirs, and files a crash may have left)."""
    try:
        return sorted(p for p in model_dir.iterdir() if p.name.startswith(STAGING_PREFIX))
    except OSError:
        return []


def remove_path(path: Path) -> None:
    """Remove a staging dir or file; already gone is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            shutil.rmtree(path)  # a second pass raises the real error, if one remains
    else:
        path.unlink(missing_ok=True)

"""Builders for on-disk model repositories used by the repository tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
DEADLINE_S = 20.0


def config_text(backend: str = "probe", marker: str = "", extra: str = "", **params: str) -> str:
    lines = [f'backend: "{backend}"'] if backend else []
    if marker:
        params = {"marker": marker, **params}
    for key, value in params.items():
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def write_config(model_dir: Path, text: str) -> None:
    """Write config.pbtxt so that its fingerprint surely changes (mtime bumped past the previous one)."""
    path = model_dir / "config.pbtxt"
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    bump_mtime(path, old)


def bump_mtime(path: Path, older_than_ns: int = 0) -> None:
    st = path.stat()
    new = max(st.st_mtime_ns, older_than_ns) + 1_000_000_000
    os.utime(path, ns=(new, new))


def write_version(model_dir: Path, version: int | str, content: str = "weights") -> Path:
    vdir = model_dir / str(version)
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "weights.txt").write_text(content)
    return vdir


def write_model(
    repo: Path,
    name: str,
    versions: Iterable[int | str] = (1,),
    config: str | None = None,
    marker: str = "",
) -> Path:
    """`<repo>/<name>/config.pbtxt` (probe backend unless `config` is given; None writes none if "")."""
    model_dir = repo / name
    model_dir.mkdir(parents=True, exist_ok=True)
    text = config_text(marker=marker) if config is None else config
    if text:
        (model_dir / "config.pbtxt").write_text(text)
    for v in versions:
        write_version(model_dir, v)
    return model_dir


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a test coroutine with a hard deadline, so a hang fails instead of stalling the suite."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, DEADLINE_S)

    return asyncio.run(bounded())


async def eventually(predicate: Any, what: str, timeout_s: float = 5.0) -> None:
    """Wait (yielding to the loop) until `predicate()` holds; fail naming `what` after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)

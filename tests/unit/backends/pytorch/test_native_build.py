"""Building the native kernel: cached per source and CPU, and a clean fallback when it cannot be built."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.backends.pytorch.kernels import native_build
from server.backends.pytorch.kernels.paged_attention import SOURCE, PagedAttentionKernel
from server.backends.pytorch.runner import PyTorchModelRunner
from server.errors import LoadError


def test_build_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if native_build.compiler() is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("HANGAR_KERNEL_CACHE", str(tmp_path))
    first = native_build.build(SOURCE)
    assert first is not None and first.parent == tmp_path
    stamp = first.stat().st_mtime_ns
    assert native_build.build(SOURCE) == first and first.stat().st_mtime_ns == stamp


def test_without_a_compiler_auto_falls_back_to_torch(
    llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(native_build, "compiler", lambda: None)
    assert PagedAttentionKernel.load() is None
    runner = PyTorchModelRunner.from_checkpoint(llama_dir, num_blocks=8, block_size=4)
    assert runner.attention_backend == "torch"
    with pytest.raises(LoadError, match="could not be built"):
        PyTorchModelRunner.from_checkpoint(llama_dir, num_blocks=8, attention_backend="native")


def test_unwritable_cache_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("HANGAR_KERNEL_CACHE", str(blocker / "cache"))
    assert native_build.build(SOURCE) is None

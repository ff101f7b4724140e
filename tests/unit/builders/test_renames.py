"""builders/renames: a version dir never replaces another by accident, and --force swaps atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import renames


def _dir(path: Path, content: str) -> Path:
    path.mkdir()
    (path / "f").write_text(content)
    return path


@pytest.fixture(params=["renameat2", "portable"])
def flavour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "portable":  # the fallback used where the kernel or filesystem lacks renameat2
        monkeypatch.setattr(renames, "_renameat2", None)
    elif renames._renameat2 is None:
        pytest.skip("no renameat2 in this libc")
    return str(request.param)


def test_rename_new_refuses_an_existing_target_even_an_empty_dir(tmp_path: Path, flavour: str) -> None:
    src = _dir(tmp_path / "src", "new")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileExistsError):
        renames.rename_new(src, tmp_path / "empty")
    assert (src / "f").read_text() == "new"
    renames.rename_new(src, tmp_path / "dst")
    assert (tmp_path / "dst" / "f").read_text() == "new" and not src.exists()


def test_swap_puts_the_new_dir_in_place_and_returns_the_old_contents(tmp_path: Path, flavour: str) -> None:
    new, current = _dir(tmp_path / "new", "new"), _dir(tmp_path / "3", "old")
    old = renames.swap_dirs(new, current, aside=tmp_path / "aside")
    assert (current / "f").read_text() == "new"
    assert (old / "f").read_text() == "old"
    assert old == (new if flavour == "renameat2" else tmp_path / "aside")

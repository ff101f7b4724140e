"""latest_version_file: the newest version directory that holds a given model file."""

from __future__ import annotations

from pathlib import Path

from server.backends.version_files import latest_version_file


def test_highest_numeric_version_with_the_file_wins(tmp_path: Path) -> None:
    for name in ("1", "2", "10", "011", "3x", ".staging-9"):
        (tmp_path / name).mkdir()
    for name in ("1", "2", "011", "3x", ".staging-9"):
        (tmp_path / name / "model.py").write_text("")
    assert latest_version_file(tmp_path, "model.py") == tmp_path / "2" / "model.py"  # 10 has no file
    assert latest_version_file(tmp_path, "model.onnx") is None
    assert latest_version_file(tmp_path / "missing", "model.py") is None

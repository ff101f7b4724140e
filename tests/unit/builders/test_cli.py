"""`hangar build`: registered through the `hangar.commands` entry point, one subcommand per target."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from server.app.main import main


def test_the_entry_point_registers_build() -> None:
    (ep,) = [ep for ep in entry_points(group="hangar.commands") if ep.name == "build"]
    assert ep.value == "builders.cli:register"


def test_every_target_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["build", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for target in ("demo", "pytorch", "tensorrtllm", "onnx-example"):
        assert target in out


def test_build_without_a_target_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build"]) == 2
    assert "TARGET" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "demo", "--repository", str(tmp_path), "--seed", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "hangar build demo: model 'demo_llm' version 1" in out
    assert "initialise a tiny Llama checkpoint with seed 3" in out
    assert "dry run: nothing was written" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["demo", "--repository", "/nonexistent/repo"], "model repository /nonexistent/repo does not exist"),
        (["demo", "--repository", ".", "--seed", "-1"], "--seed must be in [0, "),
        (["pytorch", "--checkpoint", "/nonexistent/ckpt", "--repository", ".", "--model", "m"],
         "checkpoint directory /nonexistent/ckpt does not exist"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_value(
    args: list[str],
    error: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["build", *args]) == 2
    assert error in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

"""The `hangar` command: subcommand dispatch, plug-in commands from entry points, and their failures."""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from server.app import main as main_module
from server.app.main import COMMAND_GROUP, main

CALLS: list[list[str]] = []


def register_fake_build(subparsers: Any) -> None:
    """What builders.cli:register does: add `build` with its own sub-subcommands and set `func`."""
    build = subparsers.add_parser("build", help="fake builders")
    sub = build.add_subparsers()
    demo = sub.add_parser("demo")
    demo.add_argument("--repository", required=True)

    def run(ns: argparse.Namespace) -> int:
        CALLS.append(["demo", ns.repository])
        return 0

    demo.set_defaults(func=run)


def use_entry_points(monkeypatch: pytest.MonkeyPatch, *values: str) -> None:
    eps = [EntryPoint(name="build", value=v, group=COMMAND_GROUP) for v in values]
    monkeypatch.setattr(main_module, "entry_points", lambda group: eps if group == COMMAND_GROUP else [])


def test_plugin_command_dispatches(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(monkeypatch, f"{__name__}:register_fake_build")
    CALLS.clear()
    assert main(["build", "demo", "--repository", "/r"]) == 0
    assert CALLS == [["demo", "/r"]]


def test_broken_plugin_gives_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_entry_points(monkeypatch, "no_such_package.cli:register")
    assert main(["build", "demo"]) == 2
    err = capsys.readouterr().err
    assert "hangar build" in err and "no_such_package.cli:register" in err


def test_missing_plugin_gives_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_entry_points(monkeypatch)
    assert main(["build"]) == 2
    assert COMMAND_GROUP in capsys.readouterr().err


def test_serve_does_not_load_plugins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(group: str) -> list[EntryPoint]:
        raise AssertionError("serve must not touch plug-ins")

    monkeypatch.setattr(main_module, "entry_points", refuse)
    with pytest.raises(SystemExit) as info:
        main(["serve", "--model-repository", "/m", "--grpc-port", "port"])
    assert info.value.code == 2
    assert "--grpc-port" in capsys.readouterr().err


def test_no_command_prints_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_entry_points(monkeypatch)
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err

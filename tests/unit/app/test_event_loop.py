"""--event-loop: uvloop by default where installed, asyncio on request, a clear error otherwise."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest

from server.app.event_loop import loop_name, loop_runner
from server.config import ServerConfig
from server.errors import ConfigError


async def running_loop_name() -> str:
    return loop_name()


def test_auto_runs_on_uvloop_where_installed() -> None:
    pytest.importorskip("uvloop")
    assert loop_runner("auto")(running_loop_name()) == "uvloop"
    assert loop_runner("uvloop")(running_loop_name()) == "uvloop"


def test_asyncio_choice_runs_on_the_standard_loop() -> None:
    assert loop_runner("asyncio") is asyncio.run
    assert loop_runner("asyncio")(running_loop_name()) == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_runner("auto") is asyncio.run
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        loop_runner("uvloop")


def test_flag_parses_and_refuses_unknown_values(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--model-repository", "/tmp"]
    assert ServerConfig.from_args(base).event_loop == "auto"
    assert ServerConfig.from_args([*base, "--event-loop", "AsyncIO"]).event_loop == "asyncio"
    assert ServerConfig.from_args(base, env={"HANGAR_EVENT_LOOP": "uvloop"}).event_loop == "uvloop"
    with pytest.raises(SystemExit) as exit_info:
        ServerConfig.from_args([*base, "--event-loop", "trio"])
    assert exit_info.value.code == 2 and "'trio'" in capsys.readouterr().err

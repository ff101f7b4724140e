"""The event loop `hangar serve` runs on: uvloop where installed (auto) or asked for, else asyncio's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from server.errors import ConfigError

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]


def loop_runner(choice: str) -> Runner[Any]:
    """`asyncio.run` or `uvloop.run` for an `--event-loop` value (auto, uvloop, asyncio).

    uvloop runs the same asyncio code with its callbacks, futures and socket handling in C: the gRPC
    hot path's Python (task wake-ups, call_soon, futures) gets cheaper, measured in docs/PERFORMANCE.md.

    Raises:
        ConfigError: `uvloop` asked for but not installed, or an unknown choice.
    """
    if choice == "asyncio":
        return asyncio.run
    if choice not in ("auto", "uvloop"):
        raise ConfigError(f"--event-loop: invalid choice '{choice}' (choose from auto, uvloop, asyncio)")
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("--event-loop uvloop: uvloop is not installed (pip install uvloop)") from None
        return asyncio.run
    run: Runner[Any] = uvloop.run
    return run


def loop_name() -> str:
    """The running loop's implementation, for the startup log line."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"

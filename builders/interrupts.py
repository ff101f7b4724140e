"""Signals during a build become exceptions, so the staging dir is always removed; plus the test hook
that holds a build half way through so tests can kill it at a known point."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from builders.errors import BuildFailed, BuildInterrupted

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
PAUSE_ENV = "HANGAR_BUILD_TEST_PAUSE_FILE"
"""Test-only: when set, the build writes this file (JSON: pid, staging) at the pause point, then waits until
the file is deleted (and goes on) or the process is killed; it fails after PAUSE_LIMIT_S."""
PAUSE_AT_ENV = "HANGAR_BUILD_TEST_PAUSE_AT"
"""Which point: `first-write` (default: after the first step that wrote files into the staging dir) or
`before-drop` (everything written and validated, just before the manifest and the rename)."""
PAUSE_POINTS = ("first-write", "before-drop")
PAUSE_LIMIT_S = 300.0
_PAUSE_POLL_S = 0.02


def _raise(signum: int, frame: FrameType | None) -> None:
    raise BuildInterrupted(signum)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise BuildInterrupted (Ctrl-C already raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Within: SIGTERM, SIGHUP and SIGINT are ignored (cleanup that must not be cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (*_SIGNALS, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def pause_for_tests(staging: Path, point: str) -> None:
    """The test hook (see PAUSE_ENV); a no-op unless the variables select `point`."""
    target = os.environ.get(PAUSE_ENV)
    if not target or os.environ.get(PAUSE_AT_ENV, PAUSE_POINTS[0]) != point:
        return
    path = Path(target)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "staging": str(staging)}), encoding="utf-8")
    os.replace(tmp, path)
    deadline = time.monotonic() + PAUSE_LIMIT_S
    wake = threading.Event()
    while path.exists():
        if time.monotonic() > deadline:
            raise BuildFailed(
                f"{PAUSE_ENV}: {path} was neither deleted nor the build killed in {PAUSE_LIMIT_S:.0f}s"
            )
        wake.wait(_PAUSE_POLL_S)

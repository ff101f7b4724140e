"""Running a build tool (convert_checkpoint.py, trtllm-build): its output forwarded to stderr, and the
process group killed if the build is interrupted, so no orphan keeps writing into a staging dir."""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence

from builders.errors import BuildFailed
from builders.reporter import Reporter

_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 30
_KILL_GRACE_S = 10.0


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the build process dies (even by SIGKILL). Linux only; else a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def format_command(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def run_command(argv: Sequence[str], reporter: Reporter, what: str) -> None:
    """Run `argv` to completion.

    Raises:
        BuildFailed: it could not start or exited non-zero (with the last lines of its output).
    """
    reporter.info(f"  $ {format_command(argv)}")
    try:
        proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, errors="replace", start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    except OSError as e:
        raise BuildFailed(f"{what} could not start ({argv[0]}): {e}") from None
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            print(line, end="", file=reporter.err, flush=True)
        code = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    if code != 0:
        last = "\n".join(f"    {line}" for line in tail)
        raise BuildFailed(f"{what} failed with exit status {code}; its last output:\n{last}")


def _stop(proc: subprocess.Popen[str]) -> None:
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue

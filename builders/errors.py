"""Why a build stopped, each with the exit status the `hangar build` command returns for it."""

from __future__ import annotations

import signal


class BuildError(Exception):
    """Base of every builder error; `exit_code` is what the command exits with."""

    exit_code = 1


class BuildInputError(BuildError):
    """Bad input, found before any work starts: a missing file, a contradictory limit, a taken version."""

    exit_code = 2


class BuildUnavailable(BuildError):
    """The target cannot run on this machine (e.g. TensorRT-LLM is not installed)."""

    exit_code = 2


class BuildFailed(BuildError):
    """A step or the validation of what was written failed; nothing was dropped."""

    exit_code = 1


class BuildInterrupted(BuildError):
    """A signal (SIGTERM, SIGHUP) stopped the build; nothing was dropped."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum

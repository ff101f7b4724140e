"""One build per model at a time: an exclusive flock on the model directory, released by the kernel
when the build process ends in any way (SIGKILL included), so a stale lock cannot exist."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from builders.errors import BuildInputError
from builders.staging import staging_dirs, staging_pid


class ModelLock:
    """Held for the whole build; any staging dir found while holding it belongs to a dead build."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._fd: int | None = None

    def __enter__(self) -> ModelLock:
        fd = os.open(self.model_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pids = sorted({p for d in staging_dirs(self.model_dir) if (p := staging_pid(d)) is not None})
            by = f" (pid {', '.join(map(str, pids))})" if pids else ""
            raise BuildInputError(
                f"another build of model '{self.model_dir.name}' is in progress{by}; "
                f"wait for it to finish (it holds a lock on {self.model_dir})"
            ) from None
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

"""A loaded model version's in-flight accounting, and the handle each request holds while it runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType

from server.backends.base import Backend
from server.repository.model_config import ModelConfig
from server.stats import ModelStats


class ServedVersion:
    """One loaded backend instance of (name, version). Counts in-flight requests so it can be drained.

    Created on the event loop; `release` (through a handle) may come from any thread.
    """

    def __init__(
        self,
        name: str,
        version: int,
        config: ModelConfig,
        backend: Backend,
        stats: ModelStats,
        load_duration_s: float,
        on_unloaded: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.config = config
        self.backend = backend
        self.stats = stats
        self.load_duration_s = load_duration_s
        self.on_unloaded = on_unloaded
        """Called once after `backend.unload()` (releases a temporary override dir)."""
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._retiring = False
        self._idle = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def retiring(self) -> bool:
        return self._retiring

    def acquire(self) -> ModelHandle:
        with self._lock:
            self._in_flight += 1
        return ModelHandle(self)

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            idle = self._retiring and self._in_flight == 0
        if idle:
            self._signal_idle()

    def retire(self) -> None:
        """Stop counting as servable; `wait_idle` returns once every in-flight request has released."""
        with self._lock:
            self._retiring = True
            idle = self._in_flight == 0
        if idle:
            self._signal_idle()

    def _signal_idle(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._idle.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._idle.set)

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        """True once drained after `retire()`; False if `timeout_s` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True


class ModelHandle:
    """Counts one in-flight request on a model version until `release()` (idempotent); a context manager.

    The app holds it for the whole request, a whole stream for decoupled models.
    """

    __slots__ = ("_released", "_served", "backend", "config", "name", "stats", "version")

    def __init__(self, served: ServedVersion) -> None:
        self._served = served
        self._released = False
        self.name = served.name
        self.version = served.version
        self.config = served.config
        self.backend = served.backend
        self.stats = served.stats

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._served._release()

    def __enter__(self) -> ModelHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        # A handle dropped without release (a bug in the caller) must not block draining forever.
        if not getattr(self, "_released", True):
            self.release()

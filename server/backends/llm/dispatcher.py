"""Hands engine outputs from the engine's thread to per-request queues on the event loop, batched."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class OutputDispatcher(Generic[T]):
    """Thread-safe `post(queue, item)`; items posted between two loop turns cost one loop wakeup in all.

    An engine step finishing 32 requests posts 32 items but schedules a single `call_soon_threadsafe`,
    so the event loop is woken once per step rather than once per request.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Queue[T], T]] = []
        self._scheduled = False

    def post(self, queue: asyncio.Queue[T], item: T) -> None:
        """Callable from any thread, including the loop's own."""
        with self._lock:
            self._pending.append((queue, item))
            if self._scheduled:
                return
            self._scheduled = True
        # A closed loop (server shutting down) has nobody left to read the item.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._scheduled = False
        for queue, item in batch:
            queue.put_nowait(item)

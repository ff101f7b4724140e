"""The requests an LLM model is generating, by client request id: for stop-by-id and for failing them all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from server.backends.llm.deltas import TokenDelta


@dataclass(eq=False)
class RunningRequest:
    """One generating request: its engine id, how to stop it and where its deltas go."""

    engine_id: str
    abort: Callable[[str], None]
    """Stops the engine request and frees its KV blocks (thread-safe)."""
    sink: Callable[[TokenDelta], None]
    """Delivers a delta to the request's consumer (thread-safe)."""
    stopped: bool = field(default=False)

    def stop(self) -> None:
        """Abort it and end its stream with a `cancelled` final, whatever the engine still sends."""
        if self.stopped:
            return
        self.stopped = True
        self.abort(self.engine_id)
        self.sink(TokenDelta.cancelled())

    def fail(self, message: str) -> None:
        self.sink(TokenDelta.failure(message))


class ActiveRequests:
    """Running requests keyed by client request id (ids need not be unique: all with the id are stopped)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, list[RunningRequest]] = {}

    def add(self, request_id: str, running: RunningRequest) -> None:
        with self._lock:
            self._by_id.setdefault(request_id, []).append(running)

    def remove(self, request_id: str, running: RunningRequest) -> None:
        with self._lock:
            group = self._by_id.get(request_id, [])
            if running in group:
                group.remove(running)
            if not group:
                self._by_id.pop(request_id, None)

    def stop(self, request_id: str) -> int:
        """Stop every running request with this id; returns how many were running."""
        with self._lock:
            group = list(self._by_id.get(request_id, ()))
        for running in group:
            running.stop()
        return len(group)

    def fail_all(self, message: str) -> None:
        with self._lock:
            everyone = [r for group in self._by_id.values() for r in group]
        for running in everyone:
            running.fail(message)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(g) for g in self._by_id.values())

"""The response-poller thread: awaits executor responses, routes them to requests, folds iteration stats."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from server.backends.llm.deltas import TokenDelta
from server.backends.tensorrtllm.iteration_stats import IterationStatsFolder
from server.backends.tensorrtllm.requests import to_delta

log = logging.getLogger(__name__)

DeltaSink = Callable[[TokenDelta], None]
_AWAIT = timedelta(milliseconds=50)
"""How long one await_responses call blocks: bounds how quickly the poller notices shutdown."""


class ResponsePoller:
    """Owns the executor's request ids: enqueue and cancel from any thread, deliveries from its own."""

    def __init__(self, executor: Any, stats: IterationStatsFolder, stats_period_s: float) -> None:
        self._executor = executor
        self._stats = stats
        self._stats_period_s = stats_period_s
        self._lock = threading.Lock()
        self._sinks: dict[int, DeltaSink] = {}
        self._executor_ids: dict[str, int] = {}
        self._engine_ids: dict[int, str] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hangar-trtllm-poller", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def enqueue(self, engine_id: str, request: Any, sink: DeltaSink) -> None:
        # Under the lock, so the poller cannot see a response before its sink is registered.
        with self._lock:
            executor_id = int(self._executor.enqueue_request(request))
            self._sinks[executor_id] = sink
            self._executor_ids[engine_id] = executor_id
            self._engine_ids[executor_id] = engine_id

    def cancel(self, engine_id: str) -> None:
        """The executor answers a cancel with a final CANCELLED response; unknown ids are ignored."""
        with self._lock:
            executor_id = self._executor_ids.get(engine_id)
        if executor_id is not None:
            self._executor.cancel_request(executor_id)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        next_stats = 0.0
        while not self._stopping.is_set():
            try:
                responses = self._executor.await_responses(timeout=_AWAIT)
                if time.monotonic() >= next_stats:
                    self._stats.fold(self._executor.get_latest_iteration_stats())
                    next_stats = time.monotonic() + self._stats_period_s
            except Exception as e:
                if not self._stopping.is_set():
                    self._fail(f"the TensorRT-LLM executor failed: {type(e).__name__}: {e}")
                return
            for response in responses:
                self._route(response)

    def _route(self, response: Any) -> None:
        delta = to_delta(response)
        executor_id = int(response.request_id)
        with self._lock:
            sink = self._sinks.get(executor_id)
            if delta.finished:
                self._sinks.pop(executor_id, None)
                engine_id = self._engine_ids.pop(executor_id, None)
                if engine_id is not None:
                    self._executor_ids.pop(engine_id, None)
        if sink is None:
            log.debug("response for unknown executor request %d dropped", executor_id)
            return
        sink(delta)

    def _fail(self, message: str) -> None:
        log.error("%s; failing every in-flight request", message)
        self.error = message
        with self._lock:
            sinks = list(self._sinks.values())
            self._sinks.clear()
            self._executor_ids.clear()
            self._engine_ids.clear()
        for sink in sinks:
            sink(TokenDelta.failure(message))

    @property
    def num_in_flight(self) -> int:
        with self._lock:
            return len(self._sinks)

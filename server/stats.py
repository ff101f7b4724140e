"""Per-model-version statistics (ModelStatistics RPC, Prometheus): plain counters behind one lock."""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field


class FailureReason(enum.Enum):
    """Triton's `reason` label on nv_inference_request_failure."""

    REJECTED = "REJECTED"
    CANCELED = "CANCELED"
    BACKEND = "BACKEND"
    OTHER = "OTHER"


@dataclass
class Duration:
    """StatisticDuration: how many, and their total nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += max(0, ns)


@dataclass
class BatchStats:
    """InferBatchStatistics for one batch size."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class StatsSnapshot:
    """A consistent copy of ModelStats, for exporters; durations in ns."""

    success: Duration
    fail: Duration
    queue: Duration
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration
    failures_by_reason: dict[FailureReason, int]
    inference_count: int
    execution_count: int
    last_inference_ms: int
    pending: int
    batches: dict[int, BatchStats]
    first_response_ms: list[float]
    """Times to first response observed since the last snapshot drain (for the TTFT histogram)."""


class ModelStats:
    """Counters of one model version; every method is thread-safe and O(1)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._success = Duration()
        self._fail = Duration()
        self._queue = Duration()
        self._input = Duration()
        self._infer = Duration()
        self._output = Duration()
        self._reasons: dict[FailureReason, int] = dict.fromkeys(FailureReason, 0)
        self._inference_count = 0
        self._execution_count = 0
        self._last_ms = 0
        self._pending = 0
        self._batches: dict[int, BatchStats] = {}
        self._first_response_ms: list[float] = []

    def queued(self, delta: int) -> None:
        """Adjust the number of requests queued and not yet executing."""
        with self._lock:
            self._pending += delta

    def request_done(self, duration_ns: int, queue_ns: int, compute_ns: tuple[int, int, int]) -> None:
        """A request succeeded; `duration_ns` covers the whole request (a whole stream when streaming)."""
        with self._lock:
            self._success.add(duration_ns)
            self._queue.add(queue_ns)
            self._input.add(compute_ns[0])
            self._infer.add(compute_ns[1])
            self._output.add(compute_ns[2])
            self._inference_count += 1
            self._last_ms = int(time.time() * 1000)

    def request_failed(self, duration_ns: int, reason: FailureReason) -> None:
        with self._lock:
            self._fail.add(duration_ns)
            self._reasons[reason] += 1
            self._last_ms = int(time.time() * 1000)

    def executed(self, batch_size: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One model execution (a batch of `batch_size` requests)."""
        with self._lock:
            self._execution_count += 1
            b = self._batches.setdefault(batch_size, BatchStats())
            b.compute_input.add(input_ns)
            b.compute_infer.add(infer_ns)
            b.compute_output.add(output_ns)

    def first_response(self, ms: float) -> None:
        with self._lock:
            self._first_response_ms.append(ms)

    def snapshot(self, drain_first_response: bool = False) -> StatsSnapshot:
        with self._lock:
            first = list(self._first_response_ms)
            if drain_first_response:
                self._first_response_ms.clear()
            return StatsSnapshot(
                success=Duration(self._success.count, self._success.ns),
                fail=Duration(self._fail.count, self._fail.ns),
                queue=Duration(self._queue.count, self._queue.ns),
                compute_input=Duration(self._input.count, self._input.ns),
                compute_infer=Duration(self._infer.count, self._infer.ns),
                compute_output=Duration(self._output.count, self._output.ns),
                failures_by_reason=dict(self._reasons),
                inference_count=self._inference_count,
                execution_count=self._execution_count,
                last_inference_ms=self._last_ms,
                pending=self._pending,
                batches={
                    k: BatchStats(
                        Duration(v.compute_input.count, v.compute_input.ns),
                        Duration(v.compute_infer.count, v.compute_infer.ns),
                        Duration(v.compute_output.count, v.compute_output.ns),
                    )
                    for k, v in self._batches.items()
                },
                first_response_ms=first,
            )

"""Per-model-version statistics (ModelStatistics RPC, Prometheus): plain counters behind one lock."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.histograms import (
    DEFAULT_BUCKETS,
    Histogram,
    HistogramKind,
    HistogramSnapshot,
    first_response_buckets,
)


class FailureReason(enum.Enum):
    """Triton's `reason` label on nv_inference_request_failure."""

    REJECTED = "REJECTED"
    CANCELED = "CANCELED"
    BACKEND = "BACKEND"
    OTHER = "OTHER"


class ResponseOutcome(enum.Enum):
    """How one response of a decoupled request ended (Triton's InferResponseStatistics fields)."""

    SUCCESS = "success"
    FAIL = "fail"
    EMPTY = "empty_response"
    """The final flag alone, without outputs."""
    CANCEL = "cancel"


@dataclass
class Duration:
    """StatisticDuration: how many, and their total nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        if ns > 0:
            self.ns += ns


@dataclass
class BatchStats:
    """InferBatchStatistics for one batch size."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)

    def copy(self) -> BatchStats:
        return BatchStats(*(Duration(d.count, d.ns) for d in (
            self.compute_input, self.compute_infer, self.compute_output
        )))  # fmt: skip

    def add(self, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One execution, or one request's compute (written out: this runs for every request)."""
        d = self.compute_input
        d.count += 1
        if input_ns > 0:
            d.ns += input_ns
        d = self.compute_infer
        d.count += 1
        if infer_ns > 0:
            d.ns += infer_ns
        d = self.compute_output
        d.count += 1
        if output_ns > 0:
            d.ns += output_ns


@dataclass
class ResponseStats:
    """InferResponseStatistics: the responses at one index ("0", "1", ...) of decoupled requests."""

    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    empty_response: Duration = field(default_factory=Duration)
    cancel: Duration = field(default_factory=Duration)

    def add(self, outcome: ResponseOutcome, start_ns: int, output_start_ns: int, end_ns: int) -> None:
        """One response from `start_ns` (the previous response, or compute start) to `end_ns` (sent).

        Up to `output_start_ns` (0: unknown) the model computed it, after it Hangar prepared its outputs.
        """
        total = end_ns - start_ns
        if outcome is ResponseOutcome.CANCEL:
            self.cancel.add(total)
            return
        if output_start_ns and outcome is not ResponseOutcome.EMPTY:
            self.compute_infer.add(output_start_ns - start_ns)
            self.compute_output.add(end_ns - output_start_ns)
        else:
            self.compute_infer.add(total)
        getattr(self, outcome.value).add(total)

    def copy(self) -> ResponseStats:
        return ResponseStats(*(Duration(d.count, d.ns) for d in (
            self.compute_infer, self.compute_output, self.success, self.fail, self.empty_response, self.cancel
        )))  # fmt: skip


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
    histograms: dict[HistogramKind, HistogramSnapshot]
    """Cumulative per-request distributions; the LLM ones stay empty for tensor models."""
    responses: dict[int, ResponseStats] = field(default_factory=dict)
    """Per response index; decoupled models only (ModelStatistics `response_stats`)."""


class ModelStats:
    """Counters of one model version; every method is thread-safe and O(1) (O(log buckets))."""

    def __init__(self, first_response_buckets_ms: Sequence[float] | None = None) -> None:
        self._lock = threading.Lock()
        self._success = Duration()
        self._fail = Duration()
        self._queue = Duration()
        self._compute = BatchStats()  # the requests' compute times, summed over all batch sizes
        self._reasons: dict[FailureReason, int] = dict.fromkeys(FailureReason, 0)
        self._inference_count = 0
        self._execution_count = 0
        self._last_ms = 0
        self._pending = 0
        self._batches: dict[int, BatchStats] = {}
        self._responses: dict[int, ResponseStats] = {}
        bounds = dict(DEFAULT_BUCKETS)
        if first_response_buckets_ms is not None:
            bounds[HistogramKind.FIRST_RESPONSE_MS] = tuple(first_response_buckets_ms)
        self._hist = {kind: Histogram(b) for kind, b in bounds.items()}
        self._first_response = self._hist[HistogramKind.FIRST_RESPONSE_MS]

    @classmethod
    def for_model_metrics(cls, model_metrics: Mapping[str, Any]) -> ModelStats:
        """Stats whose TTFT histogram uses the buckets of a config.pbtxt `model_metrics` section.

        Raises:
            ConfigError: unknown fields, another family, or buckets that are not strictly increasing.
        """
        return cls(first_response_buckets(model_metrics))

    def queued(self, delta: int) -> None:
        """Adjust the number of requests queued and not yet executing."""
        with self._lock:
            self._pending += delta

    def request_done(
        self,
        duration_ns: int,
        queue_ns: int,
        compute_ns: tuple[int, int, int],
        first_response_ms: float | None = None,
    ) -> None:
        """A request succeeded; `duration_ns` covers the whole request (a whole stream when streaming).

        `first_response_ms`: its time to first response, when that was not recorded on its own before.
        """
        with self._lock:
            if first_response_ms is not None:
                self._first_response.observe(first_response_ms)
            self._success.add(duration_ns)
            self._queue.add(queue_ns)
            self._compute.add(*compute_ns)
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
            b = self._batches.get(batch_size)
            if b is None:
                b = self._batches[batch_size] = BatchStats()
            b.add(input_ns, infer_ns, output_ns)

    def response_done(
        self, index: int, outcome: ResponseOutcome, start_ns: int, output_start_ns: int, end_ns: int
    ) -> None:
        """Response number `index` (from 0) of a decoupled request; see ResponseStats.add."""
        with self._lock:
            stats = self._responses.get(index)
            if stats is None:
                stats = self._responses[index] = ResponseStats()
            stats.add(outcome, start_ns, output_start_ns, end_ns)

    def first_response(self, ms: float) -> None:
        """Time from receipt to the first response of a request (any model); once per request."""
        with self._lock:
            self._first_response.observe(ms)

    def llm_request_done(
        self, prompt_tokens: int, output_tokens: int, ttft_ns: int, duration_ns: int
    ) -> None:
        """An LLM request finished (any finish reason): its token counts, time to first token, whole time.

        Time per output token is the decode time spread over the tokens after the first.
        """
        with self._lock:
            self._hist[HistogramKind.INPUT_TOKENS].observe(prompt_tokens)
            self._hist[HistogramKind.OUTPUT_TOKENS].observe(output_tokens)
            self._hist[HistogramKind.E2E_LATENCY_S].observe(duration_ns / 1e9)
            if output_tokens > 0:
                self._hist[HistogramKind.TIME_TO_FIRST_TOKEN_S].observe(ttft_ns / 1e9)
            if output_tokens > 1:
                tpot_s = max(0, duration_ns - ttft_ns) / 1e9 / (output_tokens - 1)
                self._hist[HistogramKind.TIME_PER_OUTPUT_TOKEN_S].observe(tpot_s)

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            compute = self._compute.copy()
            return StatsSnapshot(
                success=Duration(self._success.count, self._success.ns),
                fail=Duration(self._fail.count, self._fail.ns),
                queue=Duration(self._queue.count, self._queue.ns),
                compute_input=compute.compute_input,
                compute_infer=compute.compute_infer,
                compute_output=compute.compute_output,
                failures_by_reason=dict(self._reasons),
                inference_count=self._inference_count,
                execution_count=self._execution_count,
                last_inference_ms=self._last_ms,
                pending=self._pending,
                batches={k: v.copy() for k, v in self._batches.items()},
                histograms={kind: h.snapshot() for kind, h in self._hist.items()},
                responses={i: r.copy() for i, r in self._responses.items()},
            )

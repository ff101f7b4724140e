"""Per-request bookkeeping on the model handle: success/failure stats, first response, the telemetry hook."""

from __future__ import annotations

import asyncio
import time

from server.app.telemetry_port import RequestObserver
from server.errors import Cancelled, Unavailable
from server.repository.handle import ModelHandle
from server.stats import FailureReason, ResponseOutcome
from server.types import InferRequest


def _span(start_ns: int, end_ns: int) -> int:
    return end_ns - start_ns if start_ns and end_ns > start_ns else 0


class ResponseTimer:
    """Triton's per-response statistics (`response_stats`) of one decoupled request: each response is
    timed from the previous one (the first from compute start) to when it was handed to gRPC."""

    __slots__ = ("_handle", "_index", "_last_end_ns", "_request")

    def __init__(self, handle: ModelHandle, request: InferRequest) -> None:
        self._handle = handle
        self._request = request
        self._index = 0
        self._last_end_ns = 0

    def record(self, outcome: ResponseOutcome, output_start_ns: int = 0) -> None:
        """The current response ended now with `outcome`; `output_start_ns`: when the model produced it."""
        end = time.monotonic_ns()
        times = self._request.times
        start = self._last_end_ns or times.compute_start_ns or times.received_ns
        self._handle.stats.response_done(self._index, outcome, start, output_start_ns, end)
        self._index += 1
        self._last_end_ns = end


def failure_reason(error: BaseException, reached_backend: bool) -> FailureReason:
    """Triton's failure reasons: CANCELED, REJECTED (queue full), BACKEND (the model failed), OTHER."""
    if isinstance(error, Cancelled | asyncio.CancelledError):
        return FailureReason.CANCELED
    if not reached_backend:
        return FailureReason.OTHER
    if isinstance(error, Unavailable):
        return FailureReason.REJECTED
    return FailureReason.BACKEND


def rejected(handle: ModelHandle) -> None:
    """A request refused before it became a domain request (bad input, decoupled model on ModelInfer)."""
    handle.stats.request_failed(0, FailureReason.OTHER)


def first_response(handle: ModelHandle, request: InferRequest) -> None:
    """Marks the request's first response (time to first response / first token); later calls do nothing."""
    times = request.times
    if not times.first_response_ns:
        times.first_response_ns = now = time.monotonic_ns()
        handle.stats.first_response((now - times.received_ns) / 1e6)


def finish(
    handle: ModelHandle,
    request: InferRequest,
    error: BaseException | None,
    responses: int,
    observer: RequestObserver | None,
    reached_backend: bool = True,
) -> None:
    """Records the outcome once per request; the duration runs from receipt to the last response.

    A request answered now, whose first response was not marked on its own (a unary one), has its time
    to first response recorded here, under the same lock.
    """
    times = request.times
    now = time.monotonic_ns()
    duration = now - times.received_ns
    if error is None:
        first_ms = None
        if responses and not times.first_response_ns:
            times.first_response_ns = now
            first_ms = duration / 1e6
        # _span written out: this runs for every request
        queued, start, end = times.queue_start_ns, times.compute_start_ns, times.compute_end_ns
        input_end, output_start = times.compute_input_end_ns, times.compute_output_start_ns
        handle.stats.request_done(
            duration,
            start - queued if queued and start > queued else 0,
            (
                input_end - start if start and input_end > start else 0,
                output_start - input_end if input_end and output_start > input_end else 0,
                end - output_start if output_start and end > output_start else 0,
            ),
            first_ms,
        )
    else:
        handle.stats.request_failed(duration, failure_reason(error, reached_backend))
    usage = request.usage
    if usage is not None:  # LLM requests: token counts and time to first token
        ttft = _span(times.received_ns, times.first_response_ns)
        handle.stats.llm_request_done(usage.prompt_tokens, usage.output_tokens, ttft, duration)
    if observer is not None:
        observer.request_finished(request, handle.version, responses, error)

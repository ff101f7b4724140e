"""One traced request: collects frontend events, then builds its spans from the request's timestamps."""

from __future__ import annotations

import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from server.types import RequestTimes, RequestUsage


def clock_offset_ns() -> int:
    """Add to a time.monotonic_ns() reading to get epoch ns (span times are epoch based)."""
    return time.time_ns() - time.monotonic_ns()


class RequestTrace:
    """The root span opens at receipt (so logs know the trace id); the others are made at `finish` from
    the request's timestamps, so the backends never touch a span.

    Layout (Triton's): `InferRequest` (root, or a child of the client's span) -> `<model name>`
    (REQUEST_START, QUEUE_START, REQUEST_END; model/request attributes) -> `compute` (COMPUTE_* events).
    """

    def __init__(
        self,
        tracer: trace.Tracer,
        parent: otel_context.Context | None,
        model_name: str,
        model_version: str,
        request_id: str,
        received_ns: int,
    ) -> None:
        self._tracer = tracer
        self.continues_client_trace = parent is not None
        self.model_name = model_name
        self.model_version = model_version
        self.request_id = request_id
        self._offset = clock_offset_ns()
        self._root = tracer.start_span(
            "InferRequest", context=parent, kind=SpanKind.SERVER, start_time=self._wall(received_ns)
        )
        self.trace_id = format(self._root.get_span_context().trace_id, "032x")
        """32 hex digits, for logs; the client's trace id when the request carried a traceparent."""
        self._finished = False

    def event(self, name: str, monotonic_ns: int | None = None) -> None:
        """A frontend event on the root span (GRPC_WAITREAD_END, GRPC_SEND_START, ...)."""
        ts = monotonic_ns if monotonic_ns is not None else time.monotonic_ns()
        self._root.add_event(name, timestamp=self._wall(ts))

    def finish(
        self,
        times: RequestTimes,
        *,
        error: BaseException | str | None = None,
        usage: RequestUsage | None = None,
        responses: int | None = None,
        end_ns: int | None = None,
    ) -> None:
        """Build the model and compute spans and end them all; later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        end = self._wall(end_ns if end_ns is not None else time.monotonic_ns())
        start = self._wall(times.received_ns)
        root = self._root
        root.add_event("INFER_RESPONSE_COMPLETE", timestamp=end)
        model = self._model_span(root, times, start, end, usage)
        if responses is not None:
            model.set_attribute("hangar.response_count", responses)
        if times.compute_start_ns:
            self._compute_span(model, times, end)
        if error is not None:
            for span in (model, root):
                span.set_status(Status(StatusCode.ERROR, str(error)))
        model.end(end_time=end)
        root.end(end_time=end)

    def _model_span(
        self, root: trace.Span, times: RequestTimes, start: int, end: int, usage: RequestUsage | None
    ) -> trace.Span:
        ctx = root.get_span_context()
        attributes: dict[str, str | int | list[str]] = {
            "triton.model_name": self.model_name,
            "triton.model_version": self.model_version,
            "triton.request_id": self.request_id,
            "triton.trace_id": format(ctx.trace_id, "032x"),
            "triton.trace_parent_id": format(ctx.span_id, "016x"),
        }
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
            attributes["gen_ai.response.finish_reasons"] = [usage.finish_reason]
        span = self._tracer.start_span(
            self.model_name, context=trace.set_span_in_context(root), kind=SpanKind.SERVER,
            attributes=attributes, start_time=start,
        )  # fmt: skip
        span.add_event("REQUEST_START", timestamp=start)
        if times.queue_start_ns:
            span.add_event("QUEUE_START", timestamp=self._wall(times.queue_start_ns))
        if usage is not None and times.first_response_ns:
            span.add_event("FIRST_TOKEN", timestamp=self._wall(times.first_response_ns))
        span.add_event("REQUEST_END", timestamp=end)
        return span

    def _compute_span(self, model: trace.Span, times: RequestTimes, end: int) -> None:
        start = self._wall(times.compute_start_ns)
        stop = self._wall(times.compute_end_ns) if times.compute_end_ns else end
        span = self._tracer.start_span(
            "compute", context=trace.set_span_in_context(model), kind=SpanKind.SERVER, start_time=start
        )
        span.add_event("COMPUTE_START", timestamp=start)
        if times.compute_input_end_ns:
            span.add_event("COMPUTE_INPUT_END", timestamp=self._wall(times.compute_input_end_ns))
        if times.compute_output_start_ns:
            span.add_event("COMPUTE_OUTPUT_START", timestamp=self._wall(times.compute_output_start_ns))
        span.add_event("COMPUTE_END", timestamp=stop)
        span.end(end_time=stop)

    def _wall(self, monotonic_ns: int) -> int:
        return monotonic_ns + self._offset

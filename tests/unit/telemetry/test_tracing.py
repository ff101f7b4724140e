"""Request traces: Triton's span layout, sampling by rate and count, client context, TraceSetting."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from server.errors import InvalidInput, Unsupported
from server.telemetry.trace_config import TraceConfig, TraceLevel
from server.telemetry.tracing import RequestTracer
from server.types import RequestTimes, RequestUsage

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def _tracer(exporter: InMemorySpanExporter, **config: object) -> RequestTracer:
    base = {"level": TraceLevel.TIMESTAMPS, "rate": 1, "resource": {"service.name": "hangar-test"}}
    return RequestTracer(TraceConfig(**{**base, **config}), SimpleSpanProcessor(exporter))  # type: ignore[arg-type]


def _times(t0: int = 1_000_000_000) -> RequestTimes:
    return RequestTimes(
        received_ns=t0, queue_start_ns=t0 + 1_000, compute_start_ns=t0 + 5_000,
        compute_input_end_ns=t0 + 6_000, compute_output_start_ns=t0 + 9_000, compute_end_ns=t0 + 10_000,
        first_response_ns=t0 + 7_000,
    )  # fmt: skip


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_span_layout_events_and_attributes() -> None:
    exporter = InMemorySpanExporter()
    trace = _tracer(exporter).start("llm", "3", "req-1", {}, 1_000_000_000)
    assert trace is not None and len(trace.trace_id) == 32
    times = _times()
    trace.finish(times, usage=RequestUsage(7, 5, "length"), responses=5, end_ns=times.received_ns + 20_000)
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {"InferRequest", "llm", "compute"}
    root, model, compute = spans["InferRequest"], spans["llm"], spans["compute"]
    assert root.parent is None
    assert model.parent is not None and model.parent.span_id == root.context.span_id
    assert compute.parent is not None and compute.parent.span_id == model.context.span_id
    assert {s.context.trace_id for s in spans.values()} == {root.context.trace_id}
    assert format(root.context.trace_id, "032x") == trace.trace_id
    assert all(s.kind is SpanKind.SERVER for s in spans.values())
    assert model.attributes is not None
    assert model.attributes["triton.model_name"] == "llm"
    assert model.attributes["triton.model_version"] == "3"
    assert model.attributes["triton.request_id"] == "req-1"
    assert model.attributes["gen_ai.usage.input_tokens"] == 7
    assert model.attributes["gen_ai.usage.output_tokens"] == 5
    assert tuple(model.attributes["gen_ai.response.finish_reasons"]) == ("length",)  # type: ignore[arg-type]
    assert [e.name for e in model.events] == ["REQUEST_START", "QUEUE_START", "FIRST_TOKEN", "REQUEST_END"]
    assert [e.name for e in compute.events] == ["COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START",
                                                "COMPUTE_END"]  # fmt: skip
    # Monotonic times map onto the wall clock with their gaps intact.
    assert compute.start_time is not None and root.start_time is not None and root.end_time is not None
    assert compute.start_time - root.start_time == 5_000
    assert root.end_time - root.start_time == 20_000
    ttft = next(e for e in model.events if e.name == "FIRST_TOKEN").timestamp - root.start_time
    assert ttft == 7_000
    assert root.resource.attributes["service.name"] == "hangar-test"


def test_request_that_never_computed_has_no_compute_span_and_errors_mark_status() -> None:
    exporter = InMemorySpanExporter()
    trace = _tracer(exporter).start("m", "1", "", {})
    assert trace is not None
    trace.finish(RequestTimes(), error=ValueError("queue full"))
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {"InferRequest", "m"}
    assert spans["m"].status.status_code is StatusCode.ERROR
    assert spans["m"].status.description == "queue full"


def test_client_traceparent_is_continued_and_always_sampled() -> None:
    exporter = InMemorySpanExporter()
    tracer = _tracer(exporter, rate=0, count=0)  # nothing sampled on its own
    assert tracer.start("m", "1", "a", {}) is None
    context = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"}  # flags 00: not sampled by the client
    trace = tracer.start("m", "1", "b", context)
    assert trace is not None and trace.trace_id == CLIENT_TRACE and trace.continues_client_trace
    trace.finish(RequestTimes())
    root = _by_name(exporter.get_finished_spans())["InferRequest"]
    assert root.parent is not None and format(root.parent.span_id, "016x") == CLIENT_SPAN
    assert root.context.trace_flags.sampled


def test_malformed_traceparent_is_ignored() -> None:
    tracer = _tracer(InMemorySpanExporter(), rate=0)
    assert tracer.start("m", "1", "", {"traceparent": "garbage"}) is None


def test_rate_and_count() -> None:
    tracer = _tracer(InMemorySpanExporter(), rate=3, count=2)
    sampled = [tracer.start("m", "1", str(i), {}) is not None for i in range(12)]
    assert sampled == [False, False, True, False, False, True] + [False] * 6
    assert tracer.settings()["trace_count"] == ["0"]


def test_off_traces_nothing_even_with_a_client_context() -> None:
    tracer = RequestTracer(TraceConfig(), SimpleSpanProcessor(InMemorySpanExporter()))
    assert tracer.start("m", "1", "", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}) is None


def test_trace_settings_update_and_reset() -> None:
    tracer = RequestTracer(TraceConfig(rate=1000), SimpleSpanProcessor(InMemorySpanExporter()))
    assert tracer.settings() == {"trace_mode": ["opentelemetry"], "trace_level": ["OFF"],
                                 "trace_rate": ["1000"], "trace_count": ["-1"]}  # fmt: skip
    now = tracer.update_settings({"trace_level": ["TIMESTAMPS"], "trace_rate": ["1"], "trace_count": ["1"]})
    assert now["trace_level"] == ["TIMESTAMPS"] and now["trace_rate"] == ["1"]
    assert tracer.start("m", "1", "", {}) is not None  # turned on at run time
    assert tracer.start("m", "1", "", {}) is None  # count spent
    reset = tracer.update_settings({"trace_level": [], "trace_rate": [], "trace_count": []})
    assert (
        reset["trace_level"] == ["OFF"] and reset["trace_rate"] == ["1000"] and reset["trace_count"] == ["-1"]
    )


@pytest.mark.parametrize(
    ("changes", "model", "error", "words"),
    [
        ({"trace_rate": ["1"]}, "llm", Unsupported, "per-model"),
        ({"trace_file": ["/tmp/x"]}, "", Unsupported, "trace_file"),
        ({"trace_speed": ["1"]}, "", InvalidInput, "trace_speed"),
        ({"trace_rate": ["fast"]}, "", InvalidInput, "fast"),
        ({"trace_rate": ["1", "2"]}, "", InvalidInput, "one value"),
        ({"trace_level": ["TENSORS"]}, "", InvalidInput, "TENSORS"),
    ],
)
def test_trace_setting_errors(changes: dict, model: str, error: type[Exception], words: str) -> None:
    tracer = RequestTracer(TraceConfig(), SimpleSpanProcessor(InMemorySpanExporter()))
    with pytest.raises(error, match=words):
        tracer.update_settings(changes, model)
    assert tracer.settings()["trace_rate"] == ["1000"]  # all or nothing

"""Traces from a real server to real OTLP receivers (HTTP and gRPC): span names, links, client context."""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.support.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, ReceivedSpan
from tests.support.telemetry_server import add_sub, stream, telemetry_server

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER


def _tracing(url: str, *extra: str) -> tuple[str, ...]:
    return (
        "mode=opentelemetry", "level=TIMESTAMPS", f"opentelemetry,url={url}",
        "opentelemetry,bsp_schedule_delay=50", "opentelemetry,resource=service.name=hangar-it", *extra,
    )  # fmt: skip


def _trace_of(spans: list[ReceivedSpan], request_id: str) -> dict[str, ReceivedSpan]:
    """The three spans of the request whose model span carries `request_id`, by name."""
    (model,) = [s for s in spans if s.attributes.get("triton.request_id") == request_id]
    return {s.name: s for s in spans if s.trace_id == model.trace_id}


def _requests_traced(spans: list[ReceivedSpan], *ids: str) -> bool:
    seen = {s.attributes.get("triton.request_id") for s in spans}
    return set(ids) <= seen and len(spans) >= 3 * len(ids)


def test_spans_over_otlp_http_with_and_without_client_context() -> None:
    with OtlpHttpReceiver() as rx, telemetry_server(_tracing(rx.url, "rate=1")) as (srv, _):
        client = grpcclient.InferenceServerClient(srv.url)
        add_sub(client, "plain")
        add_sub(client, "continued", headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
        streamed = stream(client, n=3, delay_ms=20, request_id="streamed")
        spans = rx.wait_for(lambda s: _requests_traced(s, "plain", "continued", "streamed"))

    plain = _trace_of(spans, "plain")
    assert set(plain) == {"InferRequest", "add_sub", "compute"}
    root, model, compute = plain["InferRequest"], plain["add_sub"], plain["compute"]
    assert root.parent_span_id == ""
    assert model.parent_span_id == root.span_id and compute.parent_span_id == model.span_id
    assert {root.kind, model.kind, compute.kind} == {SERVER_KIND}
    assert root.scope == "triton-server" and root.resource["service.name"] == "hangar-it"
    assert model.attributes["triton.model_name"] == "add_sub"
    assert model.attributes["triton.model_version"] == "1"
    assert model.attributes["triton.trace_id"] == root.trace_id
    assert model.event_names() == ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
    assert compute.event_names() == [
        "COMPUTE_START",
        "COMPUTE_INPUT_END",
        "COMPUTE_OUTPUT_START",
        "COMPUTE_END",
    ]
    events = dict(model.events) | dict(compute.events)
    assert (
        events["REQUEST_START"] <= events["QUEUE_START"] <= events["COMPUTE_START"] <= events["COMPUTE_END"]
    )
    assert root.start_ns <= compute.start_ns <= compute.end_ns <= root.end_ns

    continued = _trace_of(spans, "continued")
    assert continued["InferRequest"].trace_id == CLIENT_TRACE
    assert continued["InferRequest"].parent_span_id == CLIENT_SPAN

    whole = _trace_of(spans, "streamed")
    assert whole["streaming"].attributes["hangar.response_count"] == 4  # 3 responses + the empty final
    # The request span covers the whole stream (two 20 ms gaps), not just the first response.
    assert whole["InferRequest"].end_ns - whole["InferRequest"].start_ns >= 40_000_000
    assert streamed.responses == 3


def test_rate_zero_traces_only_requests_that_carry_a_context() -> None:
    with OtlpHttpReceiver() as rx, telemetry_server(_tracing(rx.url, "rate=0")) as (srv, _):
        client = grpcclient.InferenceServerClient(srv.url)
        add_sub(client, "untraced")
        # Flags 00: the client did not sample it; a propagated context is traced all the same.
        add_sub(client, "traced", headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"})
        spans = rx.wait_for(lambda s: _requests_traced(s, "traced"))
        add_sub(client, "traced-2", headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
        rx.wait_for(lambda s: _requests_traced(s, "traced", "traced-2"))
    spans = rx.spans  # the server has stopped, so everything it would export has been exported
    assert "untraced" not in {s.attributes.get("triton.request_id") for s in spans}
    assert {s.trace_id for s in spans} == {CLIENT_TRACE}


def test_spans_over_otlp_grpc() -> None:
    with (
        OtlpGrpcReceiver() as rx,
        telemetry_server(_tracing(rx.endpoint, "rate=1", "opentelemetry,protocol=grpc")) as (srv, _),
    ):
        add_sub(grpcclient.InferenceServerClient(srv.url), "over-grpc")
        spans = rx.wait_for(lambda s: _requests_traced(s, "over-grpc"))
    assert set(_trace_of(spans, "over-grpc")) == {"InferRequest", "add_sub", "compute"}


def test_trace_setting_rpc_turns_tracing_on_and_off() -> None:
    with OtlpHttpReceiver() as rx, telemetry_server(_tracing(rx.url, "rate=1", "level=OFF")) as (srv, _):
        client = grpcclient.InferenceServerClient(srv.url)
        settings = client.get_trace_settings(as_json=True)["settings"]
        assert settings["trace_level"]["value"] == ["OFF"] and settings["trace_mode"]["value"] == [
            "opentelemetry"
        ]
        add_sub(client, "while-off")
        now = client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"], "trace_count": "1"},
                                           as_json=True)["settings"]  # fmt: skip
        assert now["trace_level"]["value"] == ["TIMESTAMPS"] and now["trace_count"]["value"] == ["1"]
        add_sub(client, "while-on")
        add_sub(client, "after-count")  # the count of 1 is spent
        rx.wait_for(lambda s: _requests_traced(s, "while-on"))
        with pytest.raises(InferenceServerException) as err:
            client.update_trace_settings(model_name="add_sub", settings={"trace_rate": "2"})
        assert err.value.status() == "StatusCode.UNIMPLEMENTED" and "per-model" in str(err.value)
        with pytest.raises(InferenceServerException, match="trace_file"):
            client.update_trace_settings(settings={"trace_file": "/tmp/trace.json"})
        reset = client.update_trace_settings(settings={"trace_level": None}, as_json=True)["settings"]
        assert reset["trace_level"]["value"] == ["OFF"]
    traced = {s.attributes.get("triton.request_id") for s in rx.spans} - {None}  # after the final flush
    assert traced == {"while-on"}

"""Per-request OpenTelemetry traces in Triton's layout: InferRequest -> <model> -> compute, over OTLP."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from server.errors import ConfigError, InvalidInput, Unsupported
from server.telemetry.request_trace import RequestTrace
from server.telemetry.trace_config import OtlpProtocol, TraceConfig, TraceLevel, parse_int, parse_level

log = logging.getLogger(__name__)

TRACER_NAME = "triton-server"
_PROPAGATOR = TraceContextTextMapPropagator()


class RequestTracer:
    """Decides which requests are traced (rate, count, client context) and starts their traces.

    With tracing off, `start` costs one attribute check. A request carrying a W3C `traceparent` is
    traced whenever tracing is on, whatever the rate and the count, as in Triton.
    """

    def __init__(self, config: TraceConfig, processor: SpanProcessor | None = None) -> None:
        self._startup = config
        self._config = config
        self.enabled = config.enabled
        """Whether tracing is on: asked for every request, so a plain attribute in step with the config."""
        self._processor = processor
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        self._lock = threading.Lock()
        self._seen = 0
        self._remaining = config.count

    def start(
        self,
        model_name: str,
        model_version: str,
        request_id: str,
        context: Mapping[str, str],
        received_ns: int | None = None,
    ) -> RequestTrace | None:
        """A trace for this request, or None when it is not sampled; called once per request (the
        observer calls it when the request is over, so the hot path never holds a span).

        `context` holds the client's W3C headers (`traceparent`, `tracestate`); `received_ns` is the
        request's `times.received_ns` (time.monotonic_ns() at receipt; now if omitted).
        """
        if not self._config.enabled:
            return None
        parent = _PROPAGATOR.extract(context) if "traceparent" in context else None
        if parent is not None and not trace.get_current_span(parent).get_span_context().is_valid:
            parent = None
        if parent is None and not self._sample():
            return None
        received = received_ns if received_ns is not None else time.monotonic_ns()
        return RequestTrace(self._get_tracer(), parent, model_name, model_version, request_id, received)

    def _sample(self) -> bool:
        with self._lock:
            rate = self._config.rate
            if rate == 0 or self._remaining == 0:
                return False
            self._seen += 1
            if self._seen % rate != 0:
                return False
            if self._remaining > 0:
                self._remaining -= 1
            return True

    def _get_tracer(self) -> trace.Tracer:
        with self._lock:
            if self._tracer is None:
                self._provider = _make_provider(self._startup, self._processor)
                self._tracer = self._provider.get_tracer(TRACER_NAME)
            return self._tracer

    def prepare(self) -> None:
        """Build the exporter now if tracing is on, so the first traced request does not pay for it."""
        if self._config.enabled:
            self._get_tracer()

    def force_flush(self, timeout_ms: int = 5000) -> bool:
        provider = self._provider
        return provider.force_flush(timeout_ms) if provider is not None else True

    def shutdown(self) -> None:
        """Export what is queued and stop; called once at server exit."""
        if self._provider is not None:
            self._provider.shutdown()

    # -- TraceSetting RPC -------------------------------------------------------------------------

    def settings(self) -> dict[str, list[str]]:
        """The global settings as the TraceSetting RPC reports them."""
        c = self._config
        return {
            "trace_mode": ["opentelemetry"],
            "trace_level": [c.level.value],
            "trace_rate": [str(c.rate)],
            "trace_count": [str(self._remaining)],
        }

    def update_settings(
        self, changes: Mapping[str, Sequence[str]], model_name: str = ""
    ) -> dict[str, list[str]]:
        """Apply a TraceSetting request; an empty value list resets that setting to its startup value.

        Raises:
            Unsupported: per-model settings, or settings of Triton's JSON trace files.
            InvalidInput: an unknown key or a bad value.
        """
        if model_name:
            raise Unsupported(f"per-model trace settings are not supported (model '{model_name}'); "
                              "omit model_name to change the global settings")  # fmt: skip
        config, remaining = self._config, self._remaining
        for key, values in changes.items():
            try:
                config, remaining = self._updated(config, remaining, key, list(values))
            except ConfigError as e:  # the same checks as the flags, but here it is the client's input
                raise InvalidInput(str(e)) from None
        with self._lock:
            self._config, self._remaining = config, remaining
            self.enabled = config.enabled
        return self.settings()

    def _updated(
        self, config: TraceConfig, remaining: int, key: str, values: list[str]
    ) -> tuple[TraceConfig, int]:
        if key in ("trace_file", "log_frequency"):
            raise Unsupported(f"trace setting '{key}' applies to JSON trace files, which are not supported")
        if key not in ("trace_level", "trace_rate", "trace_count"):
            raise InvalidInput(f"unknown trace setting '{key}' (known: trace_level, trace_rate, trace_count)")
        if key == "trace_level":
            level = _level_of(values) if values else self._startup.level
            return replace(config, level=level), remaining
        if len(values) > 1:
            raise InvalidInput(f"trace setting '{key}' takes one value, got {values}")
        if key == "trace_rate":
            rate = parse_int(values[0], "rate", minimum=0) if values else self._startup.rate
            return replace(config, rate=rate), remaining
        return config, parse_int(values[0], "count", minimum=-1) if values else self._startup.count


def _level_of(values: Sequence[str]) -> TraceLevel:
    """Triton's trace_level is a list; TIMESTAMPS anywhere turns tracing on, OFF alone turns it off."""
    levels = {parse_level(v) for v in values}
    return TraceLevel.TIMESTAMPS if TraceLevel.TIMESTAMPS in levels else TraceLevel.OFF


def _make_provider(config: TraceConfig, processor: SpanProcessor | None) -> TracerProvider:
    # ALWAYS_ON: the sampling decision is ours (rate, count, client context), taken before the span exists.
    provider = TracerProvider(sampler=ALWAYS_ON, resource=Resource.create(dict(config.resource)))
    provider.add_span_processor(processor or _batch_processor(config))
    log.info("tracing to %s over OTLP/%s", config.endpoint, config.protocol.name)
    return provider


def _batch_processor(config: TraceConfig) -> SpanProcessor:
    exporter: SpanExporter
    if config.protocol is OtlpProtocol.GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter(endpoint=config.endpoint, insecure=config.endpoint.startswith("http://"))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter(endpoint=config.endpoint)
    return BatchSpanProcessor(
        exporter,
        max_queue_size=config.bsp_max_queue_size,
        schedule_delay_millis=config.bsp_schedule_delay_ms,
        max_export_batch_size=config.bsp_max_export_batch_size,
    )

"""The telemetry the app is given: metrics endpoint, request traces, TraceSetting/LogSettings state."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from server.config import LogFormat as FlagLogFormat
from server.config import ServerConfig
from server.telemetry.logging import LogConfig, LogFormat, LogSettings, request_context
from server.telemetry.metrics import MetricsServer, VersionLister, start_metrics
from server.telemetry.metrics_config import MetricsConfig
from server.telemetry.sources import ServedVersion
from server.telemetry.trace_config import TraceConfig
from server.telemetry.tracing import RequestTracer
from server.types import InferRequest

log = logging.getLogger(__name__)
access_log = logging.getLogger("server.telemetry.requests")
T = TypeVar("T")
_SCRAPE_WAIT_S = 5.0


class TraceObserver:
    """The app's per-request hook: samples and builds the trace once the request is over, and at
    --log-verbose 1 writes one access-log line tagged with the request and trace ids."""

    def __init__(self, tracer: RequestTracer) -> None:
        self.tracer = tracer

    def wants_trace_context(self) -> bool:
        return self.tracer.enabled or access_log.isEnabledFor(logging.DEBUG)

    def request_finished(
        self, request: InferRequest, model_version: int, responses: int, error: BaseException | None
    ) -> None:
        trace_id = ""
        if self.tracer.enabled:
            times = request.times
            trace = self.tracer.start(
                request.model_name, str(model_version), request.id, request.trace_context, times.received_ns
            )
            if trace is not None:
                trace.finish(times, error=error, usage=request.usage, responses=responses)
                trace_id = trace.trace_id
        if access_log.isEnabledFor(logging.DEBUG):
            _log_request(request, model_version, responses, error, trace_id)


def _log_request(
    request: InferRequest, version: int, responses: int, error: BaseException | None, trace_id: str
) -> None:
    if not trace_id:  # not sampled here: the client's trace id still ties the line to its trace
        trace_id = client_trace_id(request.trace_context)
    ms = (time.monotonic_ns() - request.times.received_ns) / 1e6
    outcome = f"failed ({type(error).__name__}: {error})" if error is not None else "ok"
    usage = request.usage
    tokens = f", {usage.prompt_tokens}+{usage.output_tokens} tokens ({usage.finish_reason})" if usage else ""
    with request_context(request.id, trace_id):
        access_log.debug("%s v%d: %s in %.1f ms, %d responses%s", request.model_name, version, outcome, ms,
                         responses, tokens)  # fmt: skip


def client_trace_id(context: Mapping[str, str]) -> str:
    """The trace id of a W3C traceparent (version-traceid-spanid-flags), or ""."""
    parts = context.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


class TelemetrySettings:
    """The TraceSetting and LogSettings RPCs (SettingsService in server/app/telemetry_port.py)."""

    def __init__(self, tracer: RequestTracer, logs: LogSettings) -> None:
        self._tracer = tracer
        self._logs = logs

    def trace_settings(
        self, model_name: str, updates: Mapping[str, Sequence[str] | None]
    ) -> dict[str, list[str]]:
        return self._tracer.update_settings({k: list(v or ()) for k, v in updates.items()}, model_name)

    def log_settings(self, updates: Mapping[str, bool | int | str | None]) -> dict[str, bool | int | str]:
        return self._logs.update(updates)


class TelemetryService:
    """Implements the app's Telemetry protocol; built by `create_telemetry`."""

    def __init__(self, metrics: MetricsConfig, tracer: RequestTracer, logs: LogSettings) -> None:
        self.metrics_config = metrics
        self.tracer = tracer
        self._observer = TraceObserver(tracer)
        self._settings = TelemetrySettings(tracer, logs)
        self.metrics: MetricsServer | None = None

    def interceptors(self) -> Sequence[Any]:
        return ()  # nothing per RPC: an interceptor would cost every call, traced or not

    @property
    def observer(self) -> TraceObserver:
        return self._observer

    @property
    def settings(self) -> TelemetrySettings:
        return self._settings

    async def start(self, manager: Any) -> None:
        """Serve /metrics; the scrape thread reads the manager's version list on the event loop."""
        await asyncio.to_thread(self.tracer.prepare)
        lister = _on_loop(asyncio.get_running_loop(), manager.loaded_versions)
        try:
            self.metrics = start_metrics(lister, self.metrics_config)
        except OSError as e:
            where = f"{self.metrics_config.address}:{self.metrics_config.port}"
            raise OSError(f"cannot serve metrics on {where} (--metrics-address/--metrics-port): {e}") from e

    async def stop(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        await asyncio.to_thread(self.tracer.shutdown)


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], list[ServedVersion]]) -> VersionLister:
    """`fn` run on `loop` (the manager is not thread-safe) and waited for from the scrape thread."""

    def call() -> list[ServedVersion]:
        future: concurrent.futures.Future[list[ServedVersion]] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as e:
                future.set_exception(e)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=_SCRAPE_WAIT_S)

    return call


def log_config(config: ServerConfig) -> LogConfig:
    fmt = LogFormat.JSON if config.log_format is FlagLogFormat.JSON else LogFormat.DEFAULT
    return LogConfig(
        verbose=config.log_verbose,
        info=config.log_info,
        warning=config.log_warning,
        error=config.log_error,
        format=fmt,
        file=config.log_file,
    )


def configure_logging(config: ServerConfig) -> None:
    """Install Hangar's log handler on the root logger (again on a second call: settings replaced)."""
    existing = LogSettings.installed()
    if existing is not None:
        existing.reconfigure(log_config(config))
    else:
        LogSettings(log_config(config))


def create_telemetry(config: ServerConfig, env: Mapping[str, str] | None = None) -> TelemetryService:
    """Metrics, tracing and log settings for `config`.

    Raises:
        ConfigError: a bad --trace-config or --metrics-config item, or OTEL_* variable.
    """
    metrics = MetricsConfig(
        enabled=config.allow_metrics,
        address=config.metrics_address,
        port=config.metrics_port,
        cpu_metrics=config.allow_cpu_metrics,
    ).with_settings(config.metrics_config)
    tracing = TraceConfig.from_flags(config.trace_config, os.environ if env is None else env)
    logs = LogSettings.installed() or LogSettings(log_config(config))
    if tracing.enabled:
        log.info("tracing %s to %s (rate %d, count %d)", tracing.level.value, tracing.endpoint,
                 tracing.rate, tracing.count)  # fmt: skip
    return TelemetryService(metrics, RequestTracer(tracing), logs)

"""create_telemetry / configure_logging: what the app is handed, run against a stand-in manager."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.config import LogFormat as FlagLogFormat
from server.config import ServerConfig
from server.errors import ConfigError, Unsupported
from server.stats import ModelStats
from server.telemetry import configure_logging, create_telemetry
from server.telemetry.logging import LogConfig, LogFormat, LogSettings
from server.telemetry.service import TraceObserver
from server.telemetry.trace_config import TraceConfig, TraceLevel
from server.telemetry.tracing import RequestTracer
from server.types import InferRequest, RequestTimes, RequestUsage
from tests.support.prometheus import Samples
from tests.support.served_versions import Version


class _Manager:
    def __init__(self, versions: list[Version]) -> None:
        self.versions = versions

    def loaded_versions(self) -> list[Version]:
        return list(self.versions)


@pytest.fixture(autouse=True)
def _remove_hangar_log_handler() -> Iterator[None]:
    """create_telemetry installs Hangar's handler on the root logger when nothing did; take it off again."""
    yield
    owner = LogSettings.installed()
    if owner is not None:
        owner.close()


def _config(**changes: object) -> ServerConfig:
    base: dict[str, object] = {"model_repositories": (Path("/nonexistent"),), "metrics_address": "127.0.0.1",
                               "metrics_port": 0}  # fmt: skip
    return ServerConfig(**{**base, **changes})  # type: ignore[arg-type]


def test_start_serves_metrics_from_the_managers_versions_then_stop() -> None:
    stats = ModelStats()
    stats.request_done(2_000_000, 0, (0, 0, 0))
    telemetry = create_telemetry(_config(), env={})

    async def scenario() -> str:
        await telemetry.start(_Manager([Version("m", 4, stats)]))
        assert telemetry.metrics is not None
        url = f"http://127.0.0.1:{telemetry.metrics.port}/metrics"
        # The scrape thread needs the loop to list versions, so the loop must stay free meanwhile.
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        await telemetry.stop()
        return body

    body = asyncio.run(scenario())
    assert Samples.parse(body).get("nv_inference_request_success", model="m", version="4") == 1
    assert telemetry.metrics is None


def test_metrics_off_and_port_clash() -> None:
    off = create_telemetry(_config(allow_metrics=False), env={})
    asyncio.run(off.start(_Manager([])))
    assert off.metrics is None

    async def clash() -> None:
        first = create_telemetry(_config(), env={})
        await first.start(_Manager([]))
        assert first.metrics is not None
        second = create_telemetry(_config(metrics_port=first.metrics.port), env={})
        try:
            with pytest.raises(OSError, match="--metrics-port"):
                await second.start(_Manager([]))
        finally:
            await first.stop()

    asyncio.run(clash())


def test_bad_trace_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rate"):
        create_telemetry(_config(trace_config=("rate=often",)), env={})


def test_metrics_config_and_cpu_flags_reach_the_metrics_config() -> None:
    default = create_telemetry(_config(), env={}).metrics_config
    assert default.counter_latencies and default.histogram_latencies and default.cpu_metrics
    items = ("counter_latencies=false", "histogram_latencies=false")
    config = create_telemetry(_config(metrics_config=items, allow_cpu_metrics=False), env={}).metrics_config
    assert not (config.counter_latencies or config.histogram_latencies or config.cpu_metrics)
    with pytest.raises(ConfigError, match="summary_latencies"):
        create_telemetry(_config(metrics_config=("summary_latencies=true",)), env={})


def test_log_file_flag_sends_the_log_to_that_file(tmp_path: Path) -> None:
    path = tmp_path / "hangar.log"
    configure_logging(_config(log_file=str(path)))
    settings = create_telemetry(_config(log_file=str(path)), env={}).settings
    assert settings.log_settings({})["log_file"] == str(path)
    logging.getLogger("server.test").warning("to the file")
    owner = LogSettings.installed()
    assert owner is not None
    owner.close()  # flushes and closes the file handler
    assert "to the file" in path.read_text()


def test_observer_traces_a_finished_request() -> None:
    exporter = InMemorySpanExporter()
    tracer = RequestTracer(TraceConfig(level=TraceLevel.TIMESTAMPS, rate=1), SimpleSpanProcessor(exporter))
    request = InferRequest("llm", "", "r9", {}, times=RequestTimes(compute_start_ns=1, compute_end_ns=2))
    request.usage = RequestUsage(3, 2, "stop")
    observer = TraceObserver(tracer)
    assert observer.wants_trace_context()
    observer.request_finished(request, 5, 2, None)
    names = {s.name: s for s in exporter.get_finished_spans()}
    assert set(names) == {"InferRequest", "llm", "compute"}
    attributes = names["llm"].attributes or {}
    assert attributes["triton.model_version"] == "5" and attributes["hangar.response_count"] == 2


def test_observer_reads_no_trace_headers_while_nothing_is_traced_or_logged() -> None:
    observer = TraceObserver(RequestTracer(TraceConfig()))  # tracing off
    logger = logging.getLogger("server.telemetry.requests")
    level = logger.level
    try:
        logger.setLevel(logging.INFO)  # no access log
        assert not observer.wants_trace_context()
        logger.setLevel(logging.DEBUG)
        assert observer.wants_trace_context()
    finally:
        logger.setLevel(level)


def test_settings_service_and_logging_setup() -> None:
    root = logging.getLogger()
    configure_logging(_config(log_format=FlagLogFormat.JSON, log_verbose=1))
    configure_logging(_config(log_format=FlagLogFormat.JSON))  # a second call replaces, never stacks
    assert len([h for h in root.handlers if getattr(h, "hangar_log_settings", None) is not None]) == 1
    settings = create_telemetry(_config(), env={}).settings
    assert settings.log_settings({})["log_format"] == "json"
    assert settings.log_settings({"log_verbose_level": 2})["log_verbose_level"] == 2
    assert settings.log_settings({"log_verbose_level": None})["log_verbose_level"] == 0
    assert settings.trace_settings("", {"trace_rate": ["5"]})["trace_rate"] == ["5"]
    assert settings.trace_settings("", {"trace_rate": None})["trace_rate"] == ["1000"]
    with pytest.raises(Unsupported, match="per-model"):
        settings.trace_settings("llm", {"trace_rate": ["5"]})


def test_verbose_access_log_carries_request_and_trace_ids() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("server.telemetry.requests")
    logger.propagate = False
    settings = LogSettings(LogConfig(verbose=1, format=LogFormat.JSON), logger=logger, stream=stream)
    try:
        observer = TraceObserver(RequestTracer(TraceConfig()))  # tracing off: the client's trace id is used
        assert observer.wants_trace_context()  # the access log names the client's trace
        request = InferRequest("llm", "", "r-42", {})
        request.trace_context = {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
        request.usage = RequestUsage(5, 7, "length")
        observer.request_finished(request, 2, 8, None)
        observer.request_finished(InferRequest("m", "", "r-43", {}), 1, 0, ValueError("bad"))
    finally:
        settings.close()
        logger.propagate = True
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "r-42" and first["trace_id"] == "ab" * 16
    assert "llm v2: ok" in first["message"] and "5+7 tokens (length)" in first["message"]
    assert second["request_id"] == "r-43" and "trace_id" not in second
    assert "failed (ValueError: bad)" in second["message"]

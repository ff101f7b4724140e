"""--trace-config items (Triton's spelling) and OTEL_* environment into TraceConfig."""

from __future__ import annotations

import pytest

from server.errors import ConfigError
from server.telemetry.trace_config import OtlpProtocol, TraceConfig, TraceLevel


def test_defaults_are_off_with_trition_rate_and_otlp_http() -> None:
    c = TraceConfig.from_flags([], {})
    assert (c.enabled, c.rate, c.count) == (False, 1000, -1)
    assert c.endpoint == "http://localhost:4318/v1/traces"
    assert c.protocol is OtlpProtocol.HTTP
    assert c.resource == {"service.name": "hangar"}


def test_triton_flags() -> None:
    c = TraceConfig.from_flags(
        ["mode=opentelemetry", "level=TIMESTAMPS", "rate=1", "count=5",
         "opentelemetry,url=http://tempo:4318/v1/traces", "opentelemetry,resource=service.name=edge",
         "opentelemetry,resource=deployment.environment=test", "opentelemetry,bsp_schedule_delay=100"],
        {},
    )  # fmt: skip
    assert c.level is TraceLevel.TIMESTAMPS and c.enabled
    assert (c.rate, c.count, c.bsp_schedule_delay_ms) == (1, 5, 100)
    assert c.endpoint == "http://tempo:4318/v1/traces"
    assert c.resource == {"service.name": "edge", "deployment.environment": "test"}


def test_grpc_protocol_defaults_to_the_grpc_port() -> None:
    c = TraceConfig.from_flags(["opentelemetry,protocol=grpc"], {})
    assert (c.protocol, c.endpoint) == (OtlpProtocol.GRPC, "http://localhost:4317")


def test_otel_environment_applies_and_flags_win() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_RESOURCE_ATTRIBUTES": "team=ml,service.name=ignored",
        "OTEL_BSP_MAX_QUEUE_SIZE": "64",
    }
    c = TraceConfig.from_flags([], env)
    assert c.endpoint == "http://collector:4318/v1/traces"
    assert c.resource == {"service.name": "from-env", "team": "ml"}
    assert c.bsp_max_queue_size == 64
    c = TraceConfig.from_flags(["opentelemetry,url=http://flag:4318/v1/traces"], env)
    assert c.endpoint == "http://flag:4318/v1/traces"
    grpc = TraceConfig.from_flags([], {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                                       "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})  # fmt: skip
    assert (grpc.protocol, grpc.endpoint) == (OtlpProtocol.GRPC, "http://c:4317")


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("mode=triton", "mode=triton"),
        ("triton,file=/tmp/t.json", "JSON trace files"),
        ("level=TENSORS", "TENSORS"),
        ("level=LOUD", "LOUD"),
        ("rate=-1", "rate must be >= 0"),
        ("count=x", "'x'"),
        ("colour=red", "colour"),
        ("opentelemetry,url=tempo:4318", "tempo:4318"),
        ("opentelemetry,resource=novalue", "novalue"),
        ("opentelemetry,shiny=1", "shiny"),
        ("zipkin,url=http://x", "zipkin"),
        ("rate", "<setting>=<value>"),
    ],
)
def test_bad_items_are_config_errors_naming_them(item: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        TraceConfig.from_flags([item], {})

"""Tracing settings from Triton's --trace-config items (global and `opentelemetry,` scoped) and OTEL_* env."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from server.errors import ConfigError

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_SERVICE_NAME = "hangar"


class TraceLevel(enum.Enum):
    OFF = "OFF"
    TIMESTAMPS = "TIMESTAMPS"
    TENSORS = "TENSORS"


class OtlpProtocol(enum.Enum):
    """OTLP transport; the value is the OTEL_EXPORTER_OTLP_PROTOCOL spelling."""

    HTTP = "http/protobuf"
    GRPC = "grpc"


@dataclass(frozen=True)
class TraceConfig:
    level: TraceLevel = TraceLevel.OFF
    """OFF (the default) traces nothing, not even requests that carry a traceparent."""
    rate: int = 1000
    """Trace every `rate`-th request; 0 traces only requests that carry a client trace context."""
    count: int = -1
    """Stop after this many sampled traces; -1 = unlimited."""
    endpoint: str = DEFAULT_HTTP_ENDPOINT
    protocol: OtlpProtocol = OtlpProtocol.HTTP
    resource: Mapping[str, str] = field(default_factory=lambda: {"service.name": DEFAULT_SERVICE_NAME})
    bsp_max_queue_size: int = 2048
    bsp_schedule_delay_ms: int = 5000
    bsp_max_export_batch_size: int = 512

    @property
    def enabled(self) -> bool:
        return self.level is not TraceLevel.OFF

    @classmethod
    def from_flags(cls, items: Sequence[str], env: Mapping[str, str]) -> TraceConfig:
        """Settings from OTEL_* `env` first, then each `--trace-config` item in order (flags win).

        Raises:
            ConfigError: malformed items, unknown keys, bad numbers, Triton's JSON-file mode or TENSORS.
        """
        config = _from_env(env)
        explicit_endpoint = False
        for item in items:
            scope, key, value = _split(item)
            if scope == "opentelemetry" and key == "url":
                explicit_endpoint = True
            config = _apply(config, scope, key, value)
        if not explicit_endpoint and config.protocol is OtlpProtocol.GRPC and not _env_endpoint(env):
            config = replace(config, endpoint=DEFAULT_GRPC_ENDPOINT)
        return config


def _split(item: str) -> tuple[str, str, str]:
    setting, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"--trace-config expects [<mode>,]<setting>=<value>, got '{item}'")
    scope, comma, key = setting.partition(",")
    if not comma:
        scope, key = "", setting
    return scope.strip(), key.strip(), value.strip()


def _apply(config: TraceConfig, scope: str, key: str, value: str) -> TraceConfig:
    if scope == "triton":
        raise ConfigError(f"--trace-config triton,{key}: JSON trace files are not supported (use OTLP)")
    if scope == "opentelemetry":
        return _apply_otel(config, key, value)
    if scope:
        raise ConfigError(f"--trace-config: unknown mode '{scope}' (supported: opentelemetry)")
    if key == "mode":
        if value != "opentelemetry":
            raise ConfigError(f"--trace-config mode={value}: only mode=opentelemetry is supported")
        return config
    if key == "level":
        return replace(config, level=parse_level(value))
    if key == "rate":
        return replace(config, rate=parse_int(value, "rate", minimum=0))
    if key == "count":
        return replace(config, count=parse_int(value, "count", minimum=-1))
    if key in ("file", "log-frequency"):
        raise ConfigError(f"--trace-config {key}: applies to JSON trace files, which are not supported")
    raise ConfigError(f"--trace-config: unknown setting '{key}' (known: mode, level, rate, count)")


_OTEL_INTS = {
    "bsp_max_queue_size": "bsp_max_queue_size",
    "bsp_schedule_delay": "bsp_schedule_delay_ms",
    "bsp_max_export_batch_size": "bsp_max_export_batch_size",
}


def _apply_otel(config: TraceConfig, key: str, value: str) -> TraceConfig:
    if key == "url":
        if not value.startswith(("http://", "https://")):
            raise ConfigError(f"--trace-config opentelemetry,url must be an http(s) URL, got '{value}'")
        return replace(config, endpoint=value)
    if key == "resource":
        name, sep, attr = value.partition("=")
        if not sep or not name:
            raise ConfigError(f"--trace-config opentelemetry,resource expects <key>=<value>, got '{value}'")
        return replace(config, resource={**config.resource, name.strip(): attr.strip()})
    if key == "protocol":
        return replace(config, protocol=parse_protocol(value))
    if key in _OTEL_INTS:
        changes: dict[str, Any] = {_OTEL_INTS[key]: parse_int(value, key, minimum=1)}
        return replace(config, **changes)
    known = ", ".join(["url", "resource", "protocol", *_OTEL_INTS])
    raise ConfigError(f"--trace-config opentelemetry,{key}: unknown setting (known: {known})")


def _env_endpoint(env: Mapping[str, str]) -> str:
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    return env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")


def _from_env(env: Mapping[str, str]) -> TraceConfig:
    protocol_name = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = parse_protocol(protocol_name) if protocol_name else OtlpProtocol.HTTP
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").rstrip("/")
    if not endpoint and base:
        endpoint = base + "/v1/traces" if protocol is OtlpProtocol.HTTP else base
    resource = {"service.name": DEFAULT_SERVICE_NAME}
    for pair in filter(None, env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")):
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"OTEL_RESOURCE_ATTRIBUTES: expected key=value pairs, got '{pair}'")
        resource[name.strip()] = value.strip()
    if env.get("OTEL_SERVICE_NAME"):
        resource["service.name"] = env["OTEL_SERVICE_NAME"]
    config = TraceConfig(protocol=protocol, resource=resource)
    if endpoint:
        config = replace(config, endpoint=endpoint)
    for var, attr in (("OTEL_BSP_MAX_QUEUE_SIZE", "bsp_max_queue_size"),
                      ("OTEL_BSP_SCHEDULE_DELAY", "bsp_schedule_delay_ms"),
                      ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "bsp_max_export_batch_size")):  # fmt: skip
        if env.get(var):
            changes: dict[str, Any] = {attr: parse_int(env[var], var, minimum=1)}
            config = replace(config, **changes)
    return config


def parse_level(value: str) -> TraceLevel:
    try:
        level = TraceLevel(value.strip().upper())
    except ValueError:
        raise ConfigError(f"trace level must be OFF or TIMESTAMPS, got '{value}'") from None
    if level is TraceLevel.TENSORS:
        raise ConfigError("trace level TENSORS is not supported with OpenTelemetry; use TIMESTAMPS")
    return level


def parse_int(value: str, name: str, *, minimum: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"trace {name} must be an integer, got '{value}'") from None
    if n < minimum:
        raise ConfigError(f"trace {name} must be >= {minimum}, got {n}")
    return n


def parse_protocol(value: str) -> OtlpProtocol:
    v = value.strip().lower()
    if v in ("http", "http/protobuf"):
        return OtlpProtocol.HTTP
    if v == "grpc":
        return OtlpProtocol.GRPC
    raise ConfigError(f"OTLP protocol must be http/protobuf or grpc, got '{value}'")

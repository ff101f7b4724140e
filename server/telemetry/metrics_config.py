"""Metrics switches: --allow-metrics, --metrics-address/--metrics-port and Triton's --metrics-config k=v."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from server.errors import ConfigError

_UNSUPPORTED = {
    "summary_latencies": "summaries are not exported; use histogram_latencies and histogram_quantile()",
    "summary_quantiles": "summaries are not exported; use histogram_latencies",
}


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    """--allow-metrics: serve /metrics at all."""
    address: str = "0.0.0.0"
    port: int = 8002
    """0 picks a free port (tests); the bound port is MetricsServer.port."""
    counter_latencies: bool = True
    """The cumulative nv_inference_*_duration_us counters."""
    histogram_latencies: bool = True
    """nv_inference_first_response_histogram_ms. Triton defaults this to false; LLM serving wants TTFT."""
    cpu_metrics: bool = True
    """--allow-cpu-metrics: nv_cpu_utilization and nv_cpu_memory_*_bytes from /proc."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--metrics-port must be 0..65535, got {self.port}")

    def with_settings(self, settings: Sequence[str]) -> MetricsConfig:
        """Apply `--metrics-config key=value` items (repeatable, as Triton spells them).

        Raises:
            ConfigError: a malformed item, an unknown key, an unsupported key, or a non-boolean value.
        """
        config = self
        for item in settings:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"--metrics-config expects key=value, got '{item}'")
            if key in _UNSUPPORTED:
                raise ConfigError(f"--metrics-config {key}: {_UNSUPPORTED[key]}")
            if key not in ("counter_latencies", "histogram_latencies"):
                raise ConfigError(
                    f"--metrics-config: unknown key '{key}' (known: counter_latencies, histogram_latencies)"
                )
            flag = _bool(value, key)
            if key == "counter_latencies":
                config = replace(config, counter_latencies=flag)
            else:
                config = replace(config, histogram_latencies=flag)
        return config


def _bool(value: str, key: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"--metrics-config {key}: expected true or false, got '{value}'")

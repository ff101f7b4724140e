"""Triton's nv_inference_* and nv_model_* families, from ModelStats snapshots (the ModelStatistics source)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import Metric

from server.histograms import HistogramKind
from server.stats import FailureReason, StatsSnapshot
from server.telemetry.catalog import BY_NAME, Group
from server.telemetry.metrics_config import MetricsConfig
from server.telemetry.sources import VersionSample

# Value of each single-series family; durations are reported in whole microseconds, as Triton does.
_SCALARS: dict[str, Callable[[VersionSample], float]] = {
    "nv_inference_request_success": lambda v: v.stats.success.count,
    "nv_inference_count": lambda v: v.stats.inference_count,
    "nv_inference_exec_count": lambda v: v.stats.execution_count,
    "nv_inference_pending_request_count": lambda v: max(0, v.stats.pending),
    "nv_model_load_duration_secs": lambda v: v.load_duration_s,
    "nv_inference_request_duration_us": lambda v: v.stats.success.ns // 1000,
    "nv_inference_queue_duration_us": lambda v: v.stats.queue.ns // 1000,
    "nv_inference_compute_input_duration_us": lambda v: v.stats.compute_input.ns // 1000,
    "nv_inference_compute_infer_duration_us": lambda v: v.stats.compute_infer.ns // 1000,
    "nv_inference_compute_output_duration_us": lambda v: v.stats.compute_output.ns // 1000,
}


def inference_families(samples: Sequence[VersionSample], config: MetricsConfig) -> Iterator[Metric]:
    """Every enabled nv_inference_* family, with one series per model version (zeros included)."""
    groups = {Group.INFERENCE}
    if config.counter_latencies:
        groups.add(Group.LATENCY_COUNTER)
    for name, value in _SCALARS.items():
        spec = BY_NAME[name]
        if spec.group in groups:
            family = spec.new()
            for v in samples:
                spec.add(family, v.labels, value(v))
            yield family
    yield _failures(samples)
    if config.histogram_latencies:
        spec = BY_NAME["nv_inference_first_response_histogram_ms"]
        family = spec.new()
        for v in samples:
            spec.add_histogram(family, v.labels, v.stats.histograms[HistogramKind.FIRST_RESPONSE_MS])
        yield family


def _failures(samples: Sequence[VersionSample]) -> Metric:
    spec = BY_NAME["nv_inference_request_failure"]
    family = spec.new()
    for v in samples:
        for reason in FailureReason:
            spec.add(family, (*v.labels, reason.value), _failed(v.stats, reason))
    return family


def _failed(stats: StatsSnapshot, reason: FailureReason) -> int:
    return stats.failures_by_reason.get(reason, 0)

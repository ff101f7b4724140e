"""Per-request distributions of a model version: fixed-bucket histograms, and the buckets configs may set."""

from __future__ import annotations

import bisect
import enum
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.errors import ConfigError


class HistogramKind(enum.Enum):
    """The per-request distributions a model version keeps (the name ends in the unit observed)."""

    FIRST_RESPONSE_MS = "first_response_ms"
    """Time to first response of every request (Triton's nv_inference_first_response_histogram_ms)."""
    TIME_TO_FIRST_TOKEN_S = "time_to_first_token_s"
    TIME_PER_OUTPUT_TOKEN_S = "time_per_output_token_s"
    E2E_LATENCY_S = "e2e_latency_s"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"


FIRST_RESPONSE_FAMILY = "nv_inference_first_response_histogram_ms"
DEFAULT_BUCKETS: dict[HistogramKind, tuple[float, ...]] = {
    HistogramKind.FIRST_RESPONSE_MS: (100.0, 500.0, 2000.0, 5000.0),  # Triton's defaults
    HistogramKind.TIME_TO_FIRST_TOKEN_S: (
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ),
    HistogramKind.TIME_PER_OUTPUT_TOKEN_S: (
        0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ),
    HistogramKind.E2E_LATENCY_S: (0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0),
    HistogramKind.INPUT_TOKENS: (10.0, 50.0, 100.0, 500.0, 1000.0),  # TRT-LLM backend's token buckets
    HistogramKind.OUTPUT_TOKENS: (10.0, 50.0, 100.0, 500.0, 1000.0),
}


@dataclass(frozen=True)
class HistogramSnapshot:
    """A cumulative histogram: `counts[i]` observations fell in (bounds[i-1], bounds[i]]; the last is +Inf."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs ending with (+Inf, count), as Prometheus wants."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class Histogram:
    """Fixed upper bounds, cumulative since creation; not locked itself (ModelStats holds the lock)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = validate_buckets(bounds, "histogram")
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self._sum += value
        self._count += 1

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self._counts), self._sum, self._count)


def validate_buckets(bounds: Sequence[Any], where: str) -> tuple[float, ...]:
    try:
        out = tuple(float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: buckets must be numbers, got {list(bounds)!r}") from None
    if not out or any(not math.isfinite(b) for b in out) or any(a >= b for a, b in itertools.pairwise(out)):
        raise ConfigError(f"{where}: buckets must be finite and strictly increasing, got {list(bounds)!r}")
    return out


def first_response_buckets(model_metrics: Mapping[str, Any]) -> tuple[float, ...]:
    """TTFT buckets from config.pbtxt `model_metrics` (metric_control / histogram_options), else Triton's."""
    buckets = DEFAULT_BUCKETS[HistogramKind.FIRST_RESPONSE_MS]
    unknown = set(model_metrics) - {"metric_control"}
    if unknown:
        raise ConfigError(f"model_metrics: unknown field(s) {sorted(unknown)} (known: metric_control)")
    for control in model_metrics.get("metric_control", ()):
        family = (control.get("metric_identifier") or {}).get("family", "")
        if family != FIRST_RESPONSE_FAMILY:
            raise ConfigError(
                f"model_metrics: metric family '{family}' has no options to set "
                f"(only {FIRST_RESPONSE_FAMILY} takes histogram_options)"
            )
        options = control.get("histogram_options") or {}
        buckets = validate_buckets(options.get("buckets", ()), f"model_metrics {family}")
    return buckets

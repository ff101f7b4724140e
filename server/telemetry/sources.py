"""What the metrics read: the served model versions, sampled once per scrape into plain values."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from server.engine.stats import SchedulerStats
from server.stats import ModelStats, StatsSnapshot

log = logging.getLogger(__name__)


class EngineStatsSource(Protocol):
    def engine_stats(self) -> Any | None: ...


class ServedVersion(Protocol):
    """A loaded model version as the ModelManager lists it (`loaded_versions()`)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int | str: ...
    @property
    def stats(self) -> ModelStats: ...
    @property
    def load_duration_s(self) -> float: ...
    @property
    def backend(self) -> EngineStatsSource: ...


@dataclass(frozen=True)
class VersionSample:
    """One consistent reading of a version: ModelStatistics and every family come from the same one."""

    model: str
    version: str
    stats: StatsSnapshot
    engine: SchedulerStats | None
    """Set for LLM backends (ours and TensorRT-LLM); None for tensor models."""
    load_duration_s: float

    @property
    def labels(self) -> tuple[str, str]:
        return (self.model, self.version)


def sample_versions(versions: Iterable[ServedVersion]) -> list[VersionSample]:
    return [_sample(v) for v in versions]


def _sample(v: ServedVersion) -> VersionSample:
    engine: SchedulerStats | None = None
    try:
        stats = v.backend.engine_stats()
        engine = stats if isinstance(stats, SchedulerStats) else None
    except Exception:  # a backend bug must not break the scrape for every other model
        log.exception("engine_stats() of %s version %s failed", v.name, v.version)
    return VersionSample(str(v.name), str(v.version), v.stats.snapshot(), engine, float(v.load_duration_s))

"""Stand-ins for the manager's loaded versions (metrics tests): real ModelStats, engine stats on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.engine.stats import SchedulerStats
from server.stats import ModelStats


@dataclass
class EngineBackend:
    stats: SchedulerStats | None = None

    def engine_stats(self) -> Any | None:
        return self.stats


@dataclass
class Version:
    name: str
    version: int
    stats: ModelStats = field(default_factory=ModelStats)
    backend: EngineBackend = field(default_factory=EngineBackend)
    load_duration_s: float = 0.5

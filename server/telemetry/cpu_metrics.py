"""Triton's nv_cpu_* gauges from /proc: utilisation since the previous scrape, and memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

from server.telemetry.catalog import BY_NAME


class CpuReader:
    """Reads /proc/stat and /proc/meminfo; utilisation is over the interval since the last read."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = proc
        self._lock = threading.Lock()
        self._last = self._cpu_times()

    def families(self) -> Iterator[Metric]:
        util = self._utilization()
        mem = self._memory()
        if util is not None:
            yield self._gauge("nv_cpu_utilization", util)
        if mem is not None:
            yield self._gauge("nv_cpu_memory_total_bytes", mem[0])
            yield self._gauge("nv_cpu_memory_used_bytes", mem[1])

    @staticmethod
    def _gauge(name: str, value: float) -> Metric:
        spec = BY_NAME[name]
        family = spec.new()
        spec.add(family, (), value)
        return family

    def _utilization(self) -> float | None:
        now = self._cpu_times()
        with self._lock:
            last, self._last = self._last, now
        if now is None or last is None:
            return None
        busy, total = now[0] - last[0], now[1] - last[1]
        return min(1.0, max(0.0, busy / total)) if total > 0 else 0.0

    def _cpu_times(self) -> tuple[int, int] | None:
        """(busy, total) jiffies of all CPUs; idle and iowait count as not busy."""
        try:
            first = (self._proc / "stat").read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return None
        values = [int(x) for x in first[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values[:8])
        return total - idle, total

    def _memory(self) -> tuple[int, int] | None:
        """(total, used) bytes, used = MemTotal - MemAvailable."""
        try:
            fields = dict(line.split(":", 1) for line in (self._proc / "meminfo").read_text().splitlines())
            total = int(fields["MemTotal"].split()[0]) * 1024
            available = int(fields["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            return None
        return total, total - available

"""nv_cpu_* from /proc files: utilisation over the interval between reads, memory from MemAvailable."""

from __future__ import annotations

from pathlib import Path

from server.telemetry.cpu_metrics import CpuReader


def _write(proc: Path, busy: int, idle: int) -> None:
    # user nice system idle iowait irq softirq steal
    (proc / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")


def _values(reader: CpuReader) -> dict[str, float]:
    return {f.name: f.samples[0].value for f in reader.families()}


def test_utilisation_and_memory(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:  250 kB\n")
    _write(tmp_path, busy=100, idle=100)
    reader = CpuReader(tmp_path)
    _write(tmp_path, busy=175, idle=125)  # 75 busy of 100 jiffies since the first read
    values = _values(reader)
    assert values["nv_cpu_utilization"] == 0.75
    assert values["nv_cpu_memory_total_bytes"] == 1000 * 1024
    assert values["nv_cpu_memory_used_bytes"] == 750 * 1024
    assert _values(reader)["nv_cpu_utilization"] == 0.0  # nothing happened since


def test_missing_proc_files_mean_no_cpu_families(tmp_path: Path) -> None:
    assert list(CpuReader(tmp_path).families()) == []

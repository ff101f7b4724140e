"""Prometheus for tests: a text-format sample parser, and a real Prometheus server scraping a target."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = "needs Prometheus (/usr/bin/prometheus, promtool): apt-get install prometheus"
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


@dataclass
class Samples:
    """Parsed exposition text: every sample, plus the `# TYPE` of every family."""

    rows: list[tuple[str, dict[str, str], float]]
    types: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Samples:
        rows: list[tuple[str, dict[str, str], float]] = []
        types: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                types[name] = kind
            elif line and not line.startswith("#"):
                m = _LINE.match(line)
                assert m is not None, f"unparsable exposition line: {line!r}"
                labels = {k: _unescape(v) for k, v in _LABEL.findall(m.group(2) or "")}
                rows.append((m.group(1), labels, float(m.group(3))))
        return cls(rows, types)

    def get(self, name: str, **labels: str) -> float:
        """The one sample of `name` whose labels include `labels`."""
        found = [v for n, ls, v in self.rows if n == name and labels.items() <= ls.items()]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples match"
        return found[0]

    def names(self) -> set[str]:
        return {n for n, _, _ in self.rows}


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def promtool_binary() -> str | None:
    return shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """A real Prometheus on loopback scraping `target` (host:port) every `scrape_s` seconds."""

    def __init__(self, target: str, workdir: Path, scrape_s: float = 0.5, job: str = "hangar") -> None:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        interval = f"{int(scrape_s * 1000)}ms"
        config.write_text(
            f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
            f"scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        )
        self._log = (workdir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.log_path = workdir / "prometheus.log"

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series."""
        data = self.api("/api/v1/query", query=expr)
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def wait_until(self, check: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
        """Poll `check` (errors count as not yet) until it holds or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                if check():
                    return
            except (urllib.error.URLError, OSError, AssertionError, KeyError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus: {what or 'condition'} not met in {timeout_s}s")

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        def ready() -> bool:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return bool(r.status == 200)

        self.wait_until(ready, timeout_s, "ready")

    def target_health(self) -> list[str]:
        return [t["health"] for t in self.api("/api/v1/targets")["activeTargets"]]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PROMQL_WORDS = frozenset((
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "rate", "irate", "increase", "delta",
    "idelta", "deriv", "histogram_quantile", "clamp", "clamp_min", "clamp_max", "abs", "ceil", "floor",
    "round", "exp", "ln", "log2", "log10", "sqrt",
    "absent", "absent_over_time", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
    "count_over_time",
    "last_over_time", "label_replace", "label_join", "vector", "scalar", "time", "timestamp", "sort",
    "sort_desc", "changes", "resets",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan",
))  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL (or Grafana `label_values(...)`) expression reads."""
    s = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)[^)]*\)", r"\1", expr)
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "", s)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    s = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", "", s)
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s) if w not in _PROMQL_WORDS}

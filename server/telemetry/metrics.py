"""The /metrics endpoint: one collector over the served versions, an injected registry, an HTTP thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from server.telemetry.cpu_metrics import CpuReader
from server.telemetry.exposition import CONTENT_TYPE, render
from server.telemetry.inference_metrics import inference_families
from server.telemetry.llm_metrics import llm_families
from server.telemetry.metrics_config import MetricsConfig
from server.telemetry.sources import ServedVersion, sample_versions

log = logging.getLogger(__name__)

VersionLister = Callable[[], Iterable[ServedVersion]]


class HangarCollector:
    """A prometheus_client collector: every scrape takes one snapshot per version and builds all families."""

    def __init__(self, versions: VersionLister, config: MetricsConfig) -> None:
        self._versions = versions
        self._config = config
        self._cpu = CpuReader() if config.cpu_metrics else None

    def collect(self) -> Iterator[Metric]:
        samples = sample_versions(self._versions())
        yield from inference_families(samples, self._config)
        yield from llm_families(samples)
        if self._cpu is not None:
            yield from self._cpu.families()


def build_registry(versions: VersionLister, config: MetricsConfig) -> CollectorRegistry:
    """A fresh registry holding Hangar's collector (never prometheus_client's global REGISTRY)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HangarCollector(versions, config))
    return registry


class MetricsServer:
    """Serves `GET /metrics` from `registry` on its own thread, off the gRPC event loop."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        handler = _handler_for(registry)
        self._httpd = ThreadingHTTPServer((address, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self._httpd.server_address[0], self.port)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()


def start_metrics(versions: VersionLister, config: MetricsConfig) -> MetricsServer | None:
    """Start the endpoint if --allow-metrics; None when metrics are off.

    Raises:
        OSError: the address or port cannot be bound.
    """
    if not config.enabled:
        return None
    server = MetricsServer(build_registry(versions, config), config.address, config.port)
    server.start()
    return server


def _handler_for(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            try:
                body = render(registry)
            except Exception:
                log.exception("metrics collection failed")
                self.send_error(500, "metrics collection failed")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a line per scrape (every few seconds) would drown the verbose log

    return MetricsHandler

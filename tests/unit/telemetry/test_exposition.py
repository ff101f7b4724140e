"""The text writer keeps Triton's family names (no `_total` munging) and prints valid exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from server.telemetry.exposition import render


class _Fixed:
    def __init__(self, *families: Metric) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return list(self._families)


def _registry(*families: Metric) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(*families))
    return registry


def test_counter_keeps_its_triton_name_and_integer_value() -> None:
    family = Metric("nv_inference_request_success", "Number of successful inference requests", "counter")
    family.add_sample("nv_inference_request_success", {"model": "m", "version": "1"}, 3)
    text = render(_registry(family)).decode()
    assert text == (
        "# HELP nv_inference_request_success Number of successful inference requests\n"
        "# TYPE nv_inference_request_success counter\n"
        'nv_inference_request_success{model="m",version="1"} 3\n'
    )


def test_prometheus_client_counters_keep_their_total_suffix() -> None:
    registry = CollectorRegistry()
    Counter("requests", "Requests", registry=registry).inc(2)
    text = render(registry).decode()
    assert "# TYPE requests_total counter\nrequests_total 2.0\n" in text
    assert "_created" not in text


def test_label_values_are_escaped_and_output_parses() -> None:
    family = Metric("g", "help with \\ and\nnewline", "gauge")
    family.add_sample("g", {"model": 'a"b\\c\nd'}, 1.5)
    text = render(_registry(family)).decode()
    assert "# HELP g help with \\\\ and\\nnewline\n" in text
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.samples[0].labels == {"model": 'a"b\\c\nd'}
    assert parsed.samples[0].value == 1.5

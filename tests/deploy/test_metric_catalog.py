"""deploy/metrics.json is generated from the code, and says exactly what /metrics serves."""

from __future__ import annotations

from server.engine.stats import SchedulerStats
from server.stats import ModelStats
from server.telemetry.catalog import catalog_json
from server.telemetry.exposition import render
from server.telemetry.metrics import build_registry
from server.telemetry.metrics_config import MetricsConfig
from tests.deploy.catalogue import DEPLOY, catalogue
from tests.support.prometheus import Samples, metric_names
from tests.support.served_versions import EngineBackend, Version


def test_checked_in_catalogue_is_up_to_date() -> None:
    expected = catalog_json()
    actual = (DEPLOY / "metrics.json").read_text()
    assert actual == expected, "regenerate: python -m server.telemetry.catalog deploy/metrics.json"


def test_a_full_scrape_serves_exactly_the_catalogue() -> None:
    llm_stats = ModelStats()
    llm_stats.llm_request_done(4, 3, 1_000_000, 3_000_000)
    versions = [Version("llm", 1, llm_stats, EngineBackend(SchedulerStats())), Version("tensor", 1)]
    scraped = Samples.parse(render(build_registry(lambda: versions, MetricsConfig())).decode())
    families = {f["name"]: f for f in catalogue()["families"]}
    assert scraped.types == {name: f["type"] for name, f in families.items()}
    allowed = {s for f in families.values() for s in f["series"]}
    assert scraped.names() <= allowed
    for name, labels, _ in scraped.rows:
        family = next(f for f in families.values() if name in f["series"])
        expected = set(family["labels"]) | ({"le"} if name.endswith("_bucket") else set())
        assert set(labels) == expected, name
        for label, value in labels.items():
            assert value in catalogue()["label_values"].get(label, [value]), (name, label, value)


def test_promql_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (model, le) (rate(nv_llm_x_bucket{model=~"$model", a="b c"}[5m])))'
        " / on (model) group_left sum(nv_y) > 1e3"
    )
    assert metric_names(expr) == {"nv_llm_x_bucket", "nv_y"}
    assert metric_names("label_values(nv_inference_request_success, model)") == {
        "nv_inference_request_success"
    }

"""The provisioned Grafana: data sources, and a dashboard whose every query reads metrics Hangar exports."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import yaml

from tests.deploy.catalogue import DEPLOY, series_names
from tests.support.prometheus import metric_names

GRAFANA = DEPLOY / "compose" / "grafana"


def _dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "hangar.json").read_text())


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for var in dashboard["templating"]["list"]:
        yield f"variable {var['name']}", var["definition"]


def test_every_dashboard_query_reads_only_exported_metrics() -> None:
    known = series_names()
    queries = list(_queries(_dashboard()))
    assert len(queries) >= 15
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= known, f"{where}: {sorted(names - known)} are not in deploy/metrics.json"


def test_dashboard_covers_the_issue_panels() -> None:
    exprs = " ".join(e for _, e in _queries(_dashboard()))
    for needed in ("nv_inference_request_success", "nv_inference_request_failure",
                   "nv_llm_time_to_first_token_seconds_bucket", "nv_llm_time_per_output_token_seconds_bucket",
                   "nv_llm_generation_tokens_total", 'kv_cache_block_type="fraction"',
                   'request_type="waiting"'):  # fmt: skip
        assert needed in exprs


def test_latency_panels_link_to_tempo_traces() -> None:
    dashboard = _dashboard()
    latency = [
        p for p in dashboard["panels"] if "first token" in p["title"].lower() or "latency" in p["title"]
    ]
    assert latency
    for panel in latency:
        (link,) = panel["links"]
        panes = json.loads(urllib.parse.unquote(link["url"].split("panes=", 1)[1]))
        query = panes["t"]["queries"][0]
        assert query["datasource"]["uid"] == "tempo" and query["queryType"] == "traceql"
        assert "triton.model_name" in query["query"]  # the attribute our model spans carry
        assert panel["fieldConfig"]["defaults"]["links"] == [link]


def test_datasource_uids_match_the_dashboard() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    uids = {d["uid"]: d for d in sources["datasources"]}
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    assert uids["tempo"]["url"] == "http://tempo:3200"
    used = {p["datasource"]["uid"] for p in _dashboard()["panels"]}
    assert used <= set(uids)
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"

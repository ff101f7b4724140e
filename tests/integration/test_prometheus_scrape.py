"""A real Prometheus scrapes a real Hangar during a known workload; the query API reads the values back.

Needs /usr/bin/prometheus (Debian: apt-get install prometheus); skipped with that hint when missing.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.deploy.catalogue import catalogue
from tests.support.prometheus import INSTALL_HINT, PrometheusServer, Samples, prometheus_binary
from tests.support.telemetry_server import (
    Generation,
    add_sub,
    generate,
    metrics_port,
    stream,
    telemetry_server,
    write_llm_repository,
)
from tests.support.tensors import fp32

pytestmark = pytest.mark.skipif(prometheus_binary() is None, reason=INSTALL_HINT)

ADD_SUB_OK, ADD_SUB_BAD, STREAMS, STREAM_LEN, STREAM_GAP_MS = 6, 2, 3, 4, 25


class Workload:
    """What the client did and saw; the server's numbers must agree with it."""

    def __init__(self, client: grpcclient.InferenceServerClient) -> None:
        self.add_sub_s = [add_sub(client, f"a{i}") for i in range(ADD_SUB_OK)]
        for i in range(ADD_SUB_BAD):  # wrong shape: refused before it reaches the model
            with pytest.raises(InferenceServerException):
                client.infer("add_sub", [fp32("INPUT0", np.zeros((1, 3))), fp32("INPUT1", np.zeros((1, 3)))],
                             request_id=f"bad{i}")  # fmt: skip
        self.streams = [stream(client, STREAM_LEN, STREAM_GAP_MS, f"s{i}") for i in range(STREAMS)]


@pytest.fixture(scope="module")
def scraped(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrometheusServer, Workload, dict, str]]:
    with telemetry_server() as (srv, telemetry):
        client = grpcclient.InferenceServerClient(srv.url)
        workload = Workload(client)
        statistics = client.get_inference_statistics(as_json=True)
        port = metrics_port(telemetry)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            live = r.read().decode()
        workdir = Path(tmp_path_factory.mktemp("prometheus"))
        with PrometheusServer(f"127.0.0.1:{port}", workdir, scrape_s=0.25) as prom:
            prom.wait_ready()
            expr = 'nv_inference_request_success{model="streaming"}'
            prom.wait_until(lambda: [v for _, v in prom.query(expr)] == [STREAMS], what="workload scraped")
            yield prom, workload, statistics, live


def _one(prom: PrometheusServer, expr: str) -> float:
    results = prom.query(expr)
    assert len(results) == 1, f"{expr}: {results}"
    return results[0][1]


def _stats(statistics: dict, model: str) -> dict:
    (entry,) = [m for m in statistics["model_stats"] if m["name"] == model]
    return entry


def test_target_is_up_and_counts_match_the_workload(scraped: tuple) -> None:
    prom, _, _, _ = scraped
    assert _one(prom, 'up{job="hangar"}') == 1
    assert prom.target_health() == ["up"]
    assert _one(prom, 'nv_inference_request_success{model="add_sub",version="1"}') == ADD_SUB_OK
    assert _one(prom, 'nv_inference_request_failure{model="add_sub",reason="OTHER"}') == ADD_SUB_BAD
    assert _one(prom, 'sum(nv_inference_request_failure{model="streaming"})') == 0
    assert _one(prom, 'nv_inference_count{model="add_sub"}') == ADD_SUB_OK
    assert _one(prom, 'nv_inference_first_response_histogram_ms_count{model="add_sub"}') == ADD_SUB_OK
    assert _one(prom, 'nv_inference_first_response_histogram_ms_count{model="streaming"}') == STREAMS
    assert (
        _one(prom, 'nv_inference_first_response_histogram_ms_bucket{model="streaming",le="+Inf"}') == STREAMS
    )
    assert _one(prom, "sum(nv_inference_pending_request_count)") == 0
    assert _one(prom, 'nv_model_load_duration_secs{model="add_sub"}') > 0


def test_prometheus_agrees_with_model_statistics(scraped: tuple) -> None:
    prom, _, statistics, _ = scraped
    for model in ("add_sub", "streaming"):
        stats = _stats(statistics, model)
        infer = stats["inference_stats"]
        pairs = {
            "nv_inference_request_success": int(infer["success"].get("count", 0)),
            "nv_inference_count": int(stats.get("inference_count", 0)),
            "nv_inference_exec_count": int(stats.get("execution_count", 0)),
            "nv_inference_request_duration_us": int(infer["success"].get("ns", 0)) // 1000,
            "nv_inference_queue_duration_us": int(infer["queue"].get("ns", 0)) // 1000,
            "nv_inference_compute_infer_duration_us": int(infer["compute_infer"].get("ns", 0)) // 1000,
        }
        for family, expected in pairs.items():
            assert _one(prom, f'{family}{{model="{model}"}}') == expected, (model, family)
        assert _one(prom, f'sum(nv_inference_request_failure{{model="{model}"}})') == int(
            infer["fail"].get("count", 0)
        )


def test_latencies_agree_with_what_the_client_observed(scraped: tuple) -> None:
    prom, workload, _, _ = scraped
    # The server's time sits inside the client's: it starts later and ends earlier.
    add_sub_us = _one(prom, 'nv_inference_request_duration_us{model="add_sub"}')
    assert 0 < add_sub_us <= sum(workload.add_sub_s) * 1e6
    ttft_ms = _one(prom, 'nv_inference_first_response_histogram_ms_sum{model="streaming"}')
    assert 0 < ttft_ms <= sum(s.first_s for s in workload.streams) * 1e3
    # A stream's duration covers all of it: at least its (STREAM_LEN - 1) gaps, at most what the client saw.
    stream_us = _one(prom, 'nv_inference_request_duration_us{model="streaming"}')
    assert (
        STREAMS * (STREAM_LEN - 1) * STREAM_GAP_MS * 1000
        <= stream_us
        <= sum(s.total_s for s in workload.streams) * 1e6
    )
    assert all(s.responses == STREAM_LEN for s in workload.streams)


def test_live_metrics_match_the_catalogue(scraped: tuple) -> None:
    _, _, _, live = scraped
    samples = Samples.parse(live)
    families = {f["name"]: f for f in catalogue()["families"]}
    assert set(samples.types) <= set(families)
    for name, kind in samples.types.items():
        assert families[name]["type"] == kind
    tensor_families = {n for n, f in families.items() if f["group"] != "llm"}
    assert tensor_families <= set(samples.types)  # every non-LLM family is live for tensor models


LLM_REQUESTS, LLM_TOKENS = 4, 6


@pytest.fixture(scope="module")
def llm_scraped(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrometheusServer, list[Generation]]]:
    repository = write_llm_repository(Path(tmp_path_factory.mktemp("llm-repo")))
    with telemetry_server(repositories=repository, load_models=("llm",)) as (srv, telemetry):
        client = grpcclient.InferenceServerClient(srv.url)
        prompts = [[5 + i, 17, 33, 9 + i, 101][: 3 + i % 3] for i in range(LLM_REQUESTS)]
        generations = [generate(client, p, LLM_TOKENS, f"g{i}") for i, p in enumerate(prompts)]
        port = metrics_port(telemetry)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            live = Samples.parse(r.read().decode())
        # With an LLM loaded, every family of the catalogue is live, with the catalogue's type.
        assert live.types == {f["name"]: f["type"] for f in catalogue()["families"]}
        with PrometheusServer(f"127.0.0.1:{port}", Path(tmp_path_factory.mktemp("prom-llm")), 0.25) as prom:
            prom.wait_ready()
            expr = 'nv_llm_output_token_len_count{model="llm"}'
            prom.wait_until(lambda: [v for _, v in prom.query(expr)] == [LLM_REQUESTS], what="LLM workload")
            yield prom, generations


def test_llm_families_agree_with_what_clients_received(llm_scraped: tuple) -> None:
    prom, generations = llm_scraped
    output_tokens = sum(g.output_tokens for g in generations)
    assert output_tokens == LLM_REQUESTS * LLM_TOKENS
    assert _one(prom, 'nv_llm_output_token_len_sum{model="llm"}') == output_tokens
    assert _one(prom, 'nv_llm_input_token_len_sum{model="llm"}') == sum(g.prompt_tokens for g in generations)
    assert _one(prom, 'nv_llm_output_token_len_bucket{model="llm",le="10"}') == LLM_REQUESTS
    assert _one(prom, 'nv_llm_generation_tokens_total{model="llm"}') == output_tokens
    assert _one(prom, 'nv_llm_time_to_first_token_seconds_count{model="llm"}') == LLM_REQUESTS
    assert (
        0
        < _one(prom, 'nv_llm_time_to_first_token_seconds_sum{model="llm"}')
        <= sum(g.first_s for g in generations)
    )
    assert _one(prom, 'nv_llm_time_per_output_token_seconds_count{model="llm"}') == LLM_REQUESTS
    e2e = _one(prom, 'nv_llm_e2e_request_latency_seconds_sum{model="llm"}')
    assert 0 < e2e <= sum(g.total_s for g in generations)
    assert _one(prom, 'nv_inference_request_success{model="llm"}') == LLM_REQUESTS


def test_llm_engine_gauges_routers_read(llm_scraped: tuple) -> None:
    prom, _ = llm_scraped
    kv = {
        r["kv_cache_block_type"]: v for r, v in prom.query('nv_trt_llm_kv_cache_block_metrics{model="llm"}')
    }
    assert kv["max"] == 64 and kv["tokens_per"] == 16
    assert kv["used"] + kv["free"] == kv["max"] and kv["fraction"] == kv["used"] / kv["max"]
    requests = {r["request_type"]: v for r, v in prom.query('nv_trt_llm_request_metrics{model="llm"}')}
    assert requests["waiting"] == 0 and requests["active"] == 0 and requests["max"] > 0
    assert _one(prom, 'nv_trt_llm_general_metrics{model="llm",general_type="iteration_counter"}') > 0
    assert _one(prom, 'nv_llm_prompt_tokens_total{model="llm"}') > 0

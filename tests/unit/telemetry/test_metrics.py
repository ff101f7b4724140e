"""The /metrics families built from ModelStats and SchedulerStats, and the HTTP endpoint serving them."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from server.engine.stats import SchedulerStats
from server.stats import FailureReason, ModelStats
from server.telemetry.exposition import render
from server.telemetry.metrics import MetricsServer, build_registry, start_metrics
from server.telemetry.metrics_config import MetricsConfig
from tests.support.prometheus import Samples
from tests.support.served_versions import EngineBackend, Version


def _scrape(versions: list[Version], config: MetricsConfig | None = None) -> Samples:
    return Samples.parse(render(build_registry(lambda: versions, config or MetricsConfig())).decode())


def _tensor_model() -> Version:
    stats = ModelStats()
    stats.request_done(3_000_000, 1_000_000, (10_000, 2_000_000, 30_000))
    stats.request_done(5_000_000, 0, (0, 4_000_000, 0))
    stats.request_failed(1_000, FailureReason.BACKEND)
    stats.request_failed(1_000, FailureReason.CANCELED)
    stats.executed(2, 10_000, 6_000_000, 30_000)
    stats.queued(3)
    stats.first_response(150.0)
    stats.first_response(3_000.0)
    return Version("add_sub", 2, stats, load_duration_s=1.25)


def test_triton_families_carry_exact_names_types_labels_and_values() -> None:
    s = _scrape([_tensor_model()])
    mv = {"model": "add_sub", "version": "2"}
    assert s.types["nv_inference_request_success"] == "counter"
    assert s.get("nv_inference_request_success", **mv) == 2
    assert s.get("nv_inference_request_failure", **mv, reason="BACKEND") == 1
    assert s.get("nv_inference_request_failure", **mv, reason="CANCELED") == 1
    assert s.get("nv_inference_request_failure", **mv, reason="REJECTED") == 0
    assert s.get("nv_inference_count", **mv) == 2
    assert s.get("nv_inference_exec_count", **mv) == 1
    assert s.get("nv_inference_pending_request_count", **mv) == 3
    assert s.types["nv_inference_pending_request_count"] == "gauge"
    assert s.get("nv_inference_request_duration_us", **mv) == 8_000
    assert s.get("nv_inference_queue_duration_us", **mv) == 1_000
    assert s.get("nv_inference_compute_input_duration_us", **mv) == 10
    assert s.get("nv_inference_compute_infer_duration_us", **mv) == 6_000
    assert s.get("nv_inference_compute_output_duration_us", **mv) == 30
    assert s.get("nv_model_load_duration_secs", **mv) == 1.25
    ttft = "nv_inference_first_response_histogram_ms"
    assert s.types[ttft] == "histogram"
    assert s.get(f"{ttft}_bucket", **mv, le="100") == 0
    assert s.get(f"{ttft}_bucket", **mv, le="500") == 1
    assert s.get(f"{ttft}_bucket", **mv, le="5000") == 2
    assert s.get(f"{ttft}_bucket", **mv, le="+Inf") == 2
    assert (s.get(f"{ttft}_count", **mv), s.get(f"{ttft}_sum", **mv)) == (2, 3150.0)
    assert not any(n.endswith("_total") and n.startswith("nv_inference") for n in s.names())


def test_per_model_ttft_buckets_show_as_le_labels() -> None:
    stats = ModelStats(first_response_buckets_ms=[1, 10])
    stats.first_response(5.0)
    s = _scrape([Version("m", 1, stats)])
    les = {ls["le"] for n, ls, _ in s.rows if n == "nv_inference_first_response_histogram_ms_bucket"}
    assert les == {"1", "10", "+Inf"}


def test_metrics_config_switches_latency_families() -> None:
    config = MetricsConfig().with_settings(["counter_latencies=false", "histogram_latencies=false"])
    names = _scrape([_tensor_model()], config).names()
    assert "nv_inference_request_success" in names
    assert "nv_inference_request_duration_us" not in names
    assert "nv_inference_first_response_histogram_ms_count" not in names


def test_llm_families_follow_the_engine_stats() -> None:
    engine = SchedulerStats(
        num_running=4, num_waiting=3, num_context=1, max_num_seqs=16, kv_blocks_total=100, kv_blocks_free=75,
        kv_blocks_used=25, kv_block_size=16, kv_blocks_reused_total=6, prefix_cache_queries_total=8,
        num_preemptions_total=2, prompt_tokens_total=300, generation_tokens_total=120, step_counter=42,
        timestamp_s=1_700_000_000.7,
    )  # fmt: skip
    stats = ModelStats()
    stats.llm_request_done(prompt_tokens=20, output_tokens=8, ttft_ns=30_000_000, duration_ns=100_000_000)
    s = _scrape([Version("llm", 1, stats, EngineBackend(engine)), Version("plain", 1)])
    mv = {"model": "llm", "version": "1"}
    req = {k: s.get("nv_trt_llm_request_metrics", **mv, request_type=k) for k in
           ("active", "max", "scheduled", "context", "waiting")}  # fmt: skip
    assert req == {"active": 7, "max": 16, "scheduled": 4, "context": 1, "waiting": 3}
    kv = {k: s.get("nv_trt_llm_kv_cache_block_metrics", **mv, kv_cache_block_type=k) for k in
          ("max", "free", "used", "tokens_per", "reused", "fraction")}  # fmt: skip
    assert kv == {"max": 100, "free": 75, "used": 25, "tokens_per": 16, "reused": 6, "fraction": 0.25}
    assert s.get("nv_trt_llm_general_metrics", **mv, general_type="timestamp") == 1_700_000_000
    assert s.get("nv_trt_llm_general_metrics", **mv, general_type="iteration_counter") == 42
    assert s.get("nv_llm_prompt_tokens_total", **mv) == 300
    assert s.get("nv_llm_generation_tokens_total", **mv) == 120
    assert s.get("nv_llm_preemptions_total", **mv) == 2
    assert s.get("nv_llm_prefix_cache_hit_rate", **mv) == 0.75
    out = {"response_metric_type": "total_output_tokens"}
    assert s.get("nv_llm_output_token_len_sum", **mv, **out) == 8
    assert s.get("nv_llm_output_token_len_bucket", **mv, **out, le="10") == 1
    assert s.get("nv_llm_input_token_len_sum", **mv, response_metric_type="total_input_tokens") == 20
    assert s.get("nv_llm_time_to_first_token_seconds_sum", **mv) == pytest.approx(0.03)
    assert s.get("nv_llm_time_per_output_token_seconds_sum", **mv) == pytest.approx(0.01)
    assert s.get("nv_llm_e2e_request_latency_seconds_count", **mv) == 1
    # The tensor model gets no LLM series.
    assert not [
        ls for n, ls, _ in s.rows if n.startswith(("nv_trt_llm", "nv_llm")) and ls["model"] == "plain"
    ]


def test_a_failing_engine_stats_does_not_break_the_scrape() -> None:
    class Broken:
        def engine_stats(self) -> None:
            raise RuntimeError("boom")

    v = Version("m", 1)
    v.backend = Broken()  # type: ignore[assignment]
    assert _scrape([v]).get("nv_inference_request_success", model="m", version="1") == 0


def test_cpu_families_are_there_unless_turned_off() -> None:
    s = _scrape([])
    assert 0.0 <= s.get("nv_cpu_utilization") <= 1.0
    assert s.get("nv_cpu_memory_total_bytes") >= s.get("nv_cpu_memory_used_bytes") > 0
    assert "nv_cpu_utilization" not in _scrape([], MetricsConfig(cpu_metrics=False)).names()


def test_http_endpoint_serves_metrics_and_only_metrics() -> None:
    versions = [_tensor_model()]
    server = start_metrics(lambda: versions, MetricsConfig(address="127.0.0.1", port=0))
    assert isinstance(server, MetricsServer)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = r.read().decode()
        assert Samples.parse(body).get("nv_inference_request_success", model="add_sub") == 2
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=5)
        assert err.value.code == 404
    finally:
        server.stop()


def test_metrics_off_starts_nothing() -> None:
    assert start_metrics(lambda: [], MetricsConfig(enabled=False)) is None


def test_bad_metrics_config_items_name_the_key() -> None:
    from server.errors import ConfigError

    cases = (("summary_latencies=true", "summary_latencies"), ("nope=1", "nope"),
             ("counter_latencies=maybe", "maybe"), ("counter_latencies", "key=value"))  # fmt: skip
    for item, words in cases:
        with pytest.raises(ConfigError, match=words):
            MetricsConfig().with_settings([item])
    with pytest.raises(ConfigError, match="70000"):
        MetricsConfig(port=70000)

"""ModelStats histograms (server/stats.py): buckets, per-model TTFT buckets, LLM request recording."""

from __future__ import annotations

import math

import pytest

from server.errors import ConfigError
from server.histograms import DEFAULT_BUCKETS, Histogram, HistogramKind
from server.stats import ModelStats


def test_histogram_counts_each_value_in_the_first_bucket_that_holds_it() -> None:
    h = Histogram([1.0, 5.0])
    for v in (0.5, 1.0, 1.5, 5.0, 7.0):
        h.observe(v)
    snap = h.snapshot()
    assert snap.counts == (2, 2, 1)  # le=1 is inclusive, as Prometheus wants
    assert snap.cumulative() == [(1.0, 2), (5.0, 4), (math.inf, 5)]
    assert snap.sum == pytest.approx(15.0)
    assert snap.count == 5


def test_first_response_buckets_come_from_model_metrics() -> None:
    metrics = {
        "metric_control": [
            {
                "metric_identifier": {"family": "nv_inference_first_response_histogram_ms"},
                "histogram_options": {"buckets": [1, 2, 4]},
            }
        ]
    }
    stats = ModelStats.for_model_metrics(metrics)
    stats.first_response(3.0)
    hist = stats.snapshot().histograms[HistogramKind.FIRST_RESPONSE_MS]
    assert hist.bounds == (1.0, 2.0, 4.0)
    assert hist.counts == (0, 0, 1, 0)


def test_without_model_metrics_the_triton_default_buckets_apply() -> None:
    hist = ModelStats.for_model_metrics({}).snapshot().histograms[HistogramKind.FIRST_RESPONSE_MS]
    assert hist.bounds == (100.0, 500.0, 2000.0, 5000.0)


@pytest.mark.parametrize(
    ("metrics", "words"),
    [
        ({"metric_control": [{"metric_identifier": {"family": "nv_inference_count"}}]}, "nv_inference_count"),
        ({"metric_contrl": []}, "metric_contrl"),
        (
            {"metric_control": [{"metric_identifier": {"family": "nv_inference_first_response_histogram_ms"},
                                 "histogram_options": {"buckets": [5, 1]}}]},
            "[5, 1]",
        ),
    ],
)  # fmt: skip
def test_bad_model_metrics_are_config_errors_naming_the_value(metrics: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        ModelStats.for_model_metrics(metrics)


def test_llm_request_done_feeds_token_and_latency_histograms() -> None:
    stats = ModelStats()
    stats.llm_request_done(prompt_tokens=12, output_tokens=5, ttft_ns=40_000_000, duration_ns=240_000_000)
    stats.llm_request_done(prompt_tokens=3, output_tokens=1, ttft_ns=10_000_000, duration_ns=10_000_000)
    h = stats.snapshot().histograms
    assert (h[HistogramKind.INPUT_TOKENS].count, h[HistogramKind.INPUT_TOKENS].sum) == (2, 15)
    assert (h[HistogramKind.OUTPUT_TOKENS].count, h[HistogramKind.OUTPUT_TOKENS].sum) == (2, 6)
    assert h[HistogramKind.TIME_TO_FIRST_TOKEN_S].sum == pytest.approx(0.05)
    assert h[HistogramKind.E2E_LATENCY_S].sum == pytest.approx(0.25)
    # TPOT only for the request with more than one token: (240 - 40) ms over 4 tokens.
    assert h[HistogramKind.TIME_PER_OUTPUT_TOKEN_S].count == 1
    assert h[HistogramKind.TIME_PER_OUTPUT_TOKEN_S].sum == pytest.approx(0.05)


def test_snapshots_are_copies() -> None:
    stats = ModelStats()
    before = stats.snapshot().histograms[HistogramKind.FIRST_RESPONSE_MS]
    stats.first_response(1.0)
    assert before.count == 0
    assert stats.snapshot().histograms[HistogramKind.FIRST_RESPONSE_MS].count == 1


def test_every_kind_has_increasing_default_buckets() -> None:
    assert set(DEFAULT_BUCKETS) == set(HistogramKind)
    for bounds in DEFAULT_BUCKETS.values():
        assert list(bounds) == sorted(set(bounds))

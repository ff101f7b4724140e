"""LLM families: TensorRT-LLM's nv_trt_llm_* gauges (routers read them) and nv_llm_* token metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import Metric

from server.engine.stats import SchedulerStats
from server.histograms import HistogramKind
from server.telemetry.catalog import BY_NAME
from server.telemetry.sources import VersionSample

Reading = Callable[[SchedulerStats], float]

# Sub-label value -> reading, in the TensorRT-LLM backend's meaning (PROTOCOL.md 5.3).
_REQUESTS: dict[str, Reading] = {
    "active": lambda s: s.num_running + s.num_waiting,
    "max": lambda s: s.max_num_seqs,
    "scheduled": lambda s: s.num_running,
    "context": lambda s: s.num_context,
    "waiting": lambda s: s.num_waiting,
}
_KV_BLOCKS: dict[str, Reading] = {
    "max": lambda s: s.kv_blocks_total,
    "free": lambda s: s.kv_blocks_free,
    "used": lambda s: s.kv_blocks_used,
    "tokens_per": lambda s: s.kv_block_size,
    "reused": lambda s: s.kv_blocks_reused_total,
    "fraction": lambda s: s.kv_fraction_used,
}
_GENERAL: dict[str, Reading] = {
    "timestamp": lambda s: int(s.timestamp_s),
    "iteration_counter": lambda s: s.step_counter,
}
_LABELLED = (
    ("nv_trt_llm_request_metrics", _REQUESTS),
    ("nv_trt_llm_kv_cache_block_metrics", _KV_BLOCKS),
    ("nv_trt_llm_general_metrics", _GENERAL),
)
_ENGINE_SCALARS: dict[str, Reading] = {
    "nv_llm_prompt_tokens_total": lambda s: s.prompt_tokens_total,
    "nv_llm_generation_tokens_total": lambda s: s.generation_tokens_total,
    "nv_llm_preemptions_total": lambda s: s.num_preemptions_total,
    "nv_llm_prefix_cache_queries_total": lambda s: s.prefix_cache_queries_total,
    "nv_llm_prefix_cache_hits_total": lambda s: s.kv_blocks_reused_total,
    "nv_llm_prefix_cache_hit_rate": lambda s: (
        s.kv_blocks_reused_total / s.prefix_cache_queries_total if s.prefix_cache_queries_total else 0.0
    ),
}
_TOKEN_LENGTHS = (
    ("nv_llm_input_token_len", "total_input_tokens", HistogramKind.INPUT_TOKENS),
    ("nv_llm_output_token_len", "total_output_tokens", HistogramKind.OUTPUT_TOKENS),
)
_LATENCIES = (
    ("nv_llm_time_to_first_token_seconds", HistogramKind.TIME_TO_FIRST_TOKEN_S),
    ("nv_llm_time_per_output_token_seconds", HistogramKind.TIME_PER_OUTPUT_TOKEN_S),
    ("nv_llm_e2e_request_latency_seconds", HistogramKind.E2E_LATENCY_S),
)


def llm_families(samples: Sequence[VersionSample]) -> Iterator[Metric]:
    """The LLM families for every version served by an LLM backend (one that reports engine stats)."""
    llm = [v for v in samples if v.engine is not None or _has_token_data(v)]
    if not llm:
        return
    engines = [(v, v.engine) for v in llm if v.engine is not None]
    if engines:
        yield from _engine_families(engines)
    yield from _histograms(llm)


def _engine_families(engines: Sequence[tuple[VersionSample, SchedulerStats]]) -> Iterator[Metric]:
    for name, readings in _LABELLED:
        spec = BY_NAME[name]
        family = spec.new()
        for v, engine in engines:
            for sub, read in readings.items():
                spec.add(family, (*v.labels, sub), read(engine))
        yield family
    for name, read in _ENGINE_SCALARS.items():
        spec = BY_NAME[name]
        family = spec.new()
        for v, engine in engines:
            spec.add(family, v.labels, read(engine))
        yield family


def _histograms(llm: Sequence[VersionSample]) -> Iterator[Metric]:
    for name, sub, kind in _TOKEN_LENGTHS:
        spec = BY_NAME[name]
        family = spec.new()
        for v in llm:
            spec.add_histogram(family, (*v.labels, sub), v.stats.histograms[kind])
        yield family
    for name, kind in _LATENCIES:
        spec = BY_NAME[name]
        family = spec.new()
        for v in llm:
            spec.add_histogram(family, v.labels, v.stats.histograms[kind])
        yield family


def _has_token_data(v: VersionSample) -> bool:
    return v.stats.histograms[HistogramKind.OUTPUT_TOKENS].count > 0

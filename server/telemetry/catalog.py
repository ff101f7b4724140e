"""Every metric family Hangar exports: name, type, help and labels (also written to deploy/metrics.json)."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics_core import HistogramMetricFamily, Metric

from server.histograms import HistogramSnapshot


class MetricType(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Group(enum.Enum):
    """Which switch turns a family on: always, per LLM backend, or --allow-cpu-metrics."""

    INFERENCE = "inference"
    LATENCY_COUNTER = "latency_counter"
    LATENCY_HISTOGRAM = "latency_histogram"
    LLM = "llm"
    CPU = "cpu"


@dataclass(frozen=True)
class FamilySpec:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    group: Group

    def new(self) -> Metric:
        """An empty prometheus_client family; counters keep Triton's name (see exposition.py)."""
        if self.type is MetricType.HISTOGRAM:
            return HistogramMetricFamily(self.name, self.help, labels=self.labels)
        return Metric(self.name, self.help, self.type.value)

    def add(self, family: Metric, label_values: Iterable[str], value: float) -> None:
        family.add_sample(self.name, dict(zip(self.labels, label_values, strict=True)), value)

    def add_histogram(self, family: Metric, label_values: Iterable[str], hist: HistogramSnapshot) -> None:
        assert isinstance(family, HistogramMetricFamily)
        buckets = [(_le(bound), count) for bound, count in hist.cumulative()]
        family.add_metric(list(label_values), buckets, hist.sum)


def _le(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    return str(int(bound)) if bound == int(bound) else repr(bound)


MV = ("model", "version")
_I, _LC, _LH = Group.INFERENCE, Group.LATENCY_COUNTER, Group.LATENCY_HISTOGRAM
_LLM, _CPU = Group.LLM, Group.CPU
_C, _G, _H = MetricType.COUNTER, MetricType.GAUGE, MetricType.HISTOGRAM

FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec("nv_inference_request_success", _C,
               "Number of successful inference requests, all batch sizes", MV, _I),
    FamilySpec("nv_inference_request_failure", _C,
               "Number of failed inference requests, all batch sizes", (*MV, "reason"), _I),
    FamilySpec("nv_inference_count", _C,
               "Number of inferences performed (does not include cached requests)", MV, _I),
    FamilySpec("nv_inference_exec_count", _C,
               "Number of model executions performed (does not include cached requests)", MV, _I),
    FamilySpec("nv_inference_pending_request_count", _G,
               "Instantaneous number of pending requests awaiting execution per-model.", MV, _I),
    FamilySpec("nv_model_load_duration_secs", _G, "Model load time in seconds", MV, _I),
    FamilySpec("nv_inference_request_duration_us", _C,
               "Cumulative inference request duration in microseconds (includes cached requests)", MV, _LC),
    FamilySpec("nv_inference_queue_duration_us", _C,
               "Cumulative inference queuing duration in microseconds (includes cached requests)", MV, _LC),
    FamilySpec("nv_inference_compute_input_duration_us", _C,
               "Cumulative compute input duration in microseconds (does not include cached requests)",
               MV, _LC),
    FamilySpec("nv_inference_compute_infer_duration_us", _C,
               "Cumulative compute inference duration in microseconds (does not include cached requests)",
               MV, _LC),
    FamilySpec("nv_inference_compute_output_duration_us", _C,
               "Cumulative inference compute output duration in microseconds "
               "(does not include cached requests)",
               MV, _LC),
    FamilySpec("nv_inference_first_response_histogram_ms", _H,
               "Duration from request to first response in milliseconds", MV, _LH),
    FamilySpec("nv_trt_llm_request_metrics", _G, "TRT LLM request metrics", (*MV, "request_type"), _LLM),
    FamilySpec("nv_trt_llm_kv_cache_block_metrics", _G, "TRT LLM KV cache block metrics",
               (*MV, "kv_cache_block_type"), _LLM),
    FamilySpec("nv_trt_llm_general_metrics", _G, "General TRT LLM metrics", (*MV, "general_type"), _LLM),
    FamilySpec("nv_llm_input_token_len", _H, "TRT LLM response input token length",
               (*MV, "response_metric_type"), _LLM),
    FamilySpec("nv_llm_output_token_len", _H, "TRT LLM response output token length",
               (*MV, "response_metric_type"), _LLM),
    FamilySpec("nv_llm_time_to_first_token_seconds", _H,
               "Time from request receipt to the first generated token, in seconds", MV, _LLM),
    FamilySpec("nv_llm_time_per_output_token_seconds", _H,
               "Decode time per output token after the first, in seconds", MV, _LLM),
    FamilySpec("nv_llm_e2e_request_latency_seconds", _H,
               "End-to-end LLM request latency (whole stream), in seconds", MV, _LLM),
    FamilySpec("nv_llm_prompt_tokens_total", _C, "Prompt tokens prefilled by the engine", MV, _LLM),
    FamilySpec("nv_llm_generation_tokens_total", _C, "Tokens generated by the engine", MV, _LLM),
    FamilySpec("nv_llm_preemptions_total", _C,
               "Requests preempted (KV blocks reclaimed, recomputed later)", MV, _LLM),
    FamilySpec("nv_llm_prefix_cache_queries_total", _C,
               "Prompt KV blocks looked up in the prefix cache", MV, _LLM),
    FamilySpec("nv_llm_prefix_cache_hits_total", _C,
               "Prompt KV blocks served from the prefix cache", MV, _LLM),
    FamilySpec("nv_llm_prefix_cache_hit_rate", _G,
               "Prefix cache hits over lookups since load, 0 to 1", MV, _LLM),
    FamilySpec("nv_cpu_utilization", _G, "CPU utilization rate [0.0 - 1.0]", (), _CPU),
    FamilySpec("nv_cpu_memory_total_bytes", _G, "CPU total memory (RAM), in bytes", (), _CPU),
    FamilySpec("nv_cpu_memory_used_bytes", _G, "CPU used memory (RAM), in bytes", (), _CPU),
)  # fmt: skip

BY_NAME: dict[str, FamilySpec] = {f.name: f for f in FAMILIES}

LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "reason": ("REJECTED", "CANCELED", "BACKEND", "OTHER"),
    "request_type": ("active", "max", "scheduled", "context", "waiting"),
    "kv_cache_block_type": ("max", "free", "used", "tokens_per", "reused", "fraction"),
    "general_type": ("timestamp", "iteration_counter"),
    "response_metric_type": ("total_input_tokens", "total_output_tokens"),
}


def catalog_json() -> str:
    """The catalogue as deploy/metrics.json holds it: what dashboards and alerts may query."""
    families = [
        {
            "name": f.name,
            "type": f.type.value,
            "help": f.help,
            "labels": list(f.labels),
            "group": f.group.value,
            "series": _series_names(f),
        }
        for f in FAMILIES
    ]
    return json.dumps({"families": families, "label_values": LABEL_VALUES}, indent=2) + "\n"


def _series_names(f: FamilySpec) -> list[str]:
    if f.type is MetricType.HISTOGRAM:
        return [f"{f.name}_bucket", f"{f.name}_sum", f"{f.name}_count"]
    return [f.name]


if __name__ == "__main__":
    # `python -m server.telemetry.catalog deploy/metrics.json` regenerates the checked-in catalogue.
    text = catalog_json()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)

"""Prometheus text format 0.0.4 that keeps each family's own name (Triton's counters carry no `_total`)."""

from __future__ import annotations

from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# prometheus_client's own writer appends `_total` to every counter family, so Triton's
# `nv_inference_request_success` would become `nv_inference_request_success_total` and break the
# dashboards and routers that match Triton's names. This writer prints families exactly as collected.


def render(registry: Collector) -> bytes:
    """Every family of `registry` in the text format, names and types as the collectors made them."""
    out: list[str] = []
    for family in registry.collect():
        name = _exposed_name(family.name, family.type, family.samples)
        mtype = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}.get(family.type, family.type)
        out.append(f"# HELP {name} {_escape_help(family.documentation)}\n")
        out.append(f"# TYPE {name} {mtype}\n")
        out.extend(_sample_line(s) for s in family.samples if not s.name.endswith("_created"))
    return "".join(out).encode("utf-8")


def _exposed_name(name: str, mtype: str, samples: list[Sample]) -> str:
    # prometheus_client's own counters (process_cpu_seconds) name their samples `<family>_total`.
    values = [s for s in samples if not s.name.endswith("_created")]
    if mtype == "counter" and values and all(s.name == name + "_total" for s in values):
        return name + "_total"
    return name


def _sample_line(sample: Sample) -> str:
    labels = ""
    if sample.labels:
        pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(sample.labels.items()))
        labels = "{" + pairs + "}"
    return f"{sample.name}{labels} {_value(sample.value)}\n"


def _value(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(floatToGoString(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")

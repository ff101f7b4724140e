"""The checked-in metric catalogue (deploy/metrics.json) as the deploy tests read it."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def catalogue() -> dict:
    return json.loads((DEPLOY / "metrics.json").read_text())


def series_names() -> set[str]:
    """Every series name Hangar exports (histograms as _bucket/_sum/_count), plus Prometheus's `up`."""
    return {s for f in catalogue()["families"] for s in f["series"]} | {"up"}

"""Config fields Hangar accepts but does not enforce: one WARNING at load, naming the model and fields."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.backends.base import BackendRegistry
from server.repository.config_source import resolve_config
from server.repository.model_config import unenforced_fields
from tests.support.python_models import IDENTITY_CODE, write_python_model

CONFIG = """
backend: "python"
max_batch_size: 8
input [ { name: "IN", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "OUT", data_type: TYPE_FP32, dims: [ -1 ] } ]
%s
"""
HINTS = """
optimization { priority: PRIORITY_MAX }
dynamic_batching { preserve_ordering: true }
instance_group [ { count: 1, kind: KIND_CPU, rate_limiter { priority: 2 } } ]
"""


def load_warnings(repo: Path, extra: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    model_dir = write_python_model(repo, "m", CONFIG % extra, IDENTITY_CODE)
    with caplog.at_level(logging.WARNING, logger="server.repository"):
        resolve_config("m", model_dir, [model_dir / "1"], BackendRegistry())
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_scheduling_hints_are_named_in_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    warnings = load_warnings(tmp_path, HINTS, caplog)
    assert warnings == [
        "model 'm': config optimization, instance_group.rate_limiter, dynamic_batching.preserve_ordering "
        "accepted but not enforced by Hangar"
    ]


def test_a_config_without_them_loads_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quiet = "dynamic_batching { preserve_ordering: false }\ninstance_group [ { count: 1 } ]"
    assert load_warnings(tmp_path, quiet, caplog) == []


def test_unenforced_fields_of_the_json_form() -> None:
    assert unenforced_fields({}) == []
    assert unenforced_fields({"optimization": {}, "instance_group": [{"count": 2}]}) == []
    assert unenforced_fields({"instance_group": [{}, {"rate_limiter": {"priority": 1}}]}) == [
        "instance_group.rate_limiter"
    ]

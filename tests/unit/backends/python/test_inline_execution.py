"""Cheap non-decoupled Python models execute on the event loop once warmed up (see InlineGate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from server.scheduling.inline_gate import INLINE_PARAMETER, WARMUP_EXECUTES
from tests.support.tensor_models import load_backend, make_request, outputs_of, run_requests
from tests.unit.backends.python.model_files import write_model

# Y is 1 where execute ran on the instance's worker thread, 0 where it ran on the event loop.
WHERE = """
    import threading
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        {prefix}def execute(self, requests):
            on_worker = threading.current_thread().name.startswith("hangar-")
            return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.full([1], on_worker, np.float32))])
                    for _ in requests]
"""


def where_it_ran(tmp_path: Path, prefix: str = "", config: dict[str, object] | None = None) -> list[float]:
    model_dir, cfg = write_model(tmp_path, "where", WHERE.format(prefix=prefix), config)
    backend = load_backend(model_dir, config=cfg)
    try:
        return [
            float(
                outputs_of(run_requests(backend, make_request("where", {"X": np.ones(1, np.float32)}))[0][0])[
                    "Y"
                ][0]
            )
            for _ in range(WARMUP_EXECUTES + 8)
        ]
    finally:
        backend.unload()


OPT_IN = {"parameters": {INLINE_PARAMETER: {"string_value": "true"}}}


def test_cheap_model_that_opts_in_moves_to_the_loop_after_warmup(tmp_path: Path) -> None:
    ran = where_it_ran(tmp_path, config=OPT_IN)
    assert ran[:WARMUP_EXECUTES] == [1.0] * WARMUP_EXECUTES
    # then on the loop (from the first one on, unless the whole process stalled meanwhile)
    assert 0.0 in ran[WARMUP_EXECUTES:]


def test_parameter_false_keeps_executes_on_the_worker(tmp_path: Path) -> None:
    ran = where_it_ran(tmp_path, config={"parameters": {INLINE_PARAMETER: {"string_value": "false"}}})
    assert set(ran) == {1.0}


def test_python_models_stay_on_the_worker_unless_they_opt_in(tmp_path: Path) -> None:
    # Model code may block or call asyncio.run, which would fail on the server's loop.
    assert set(where_it_ran(tmp_path)) == {1.0}


def test_async_execute_never_runs_on_the_loop(tmp_path: Path) -> None:
    assert set(where_it_ran(tmp_path, prefix="async ", config=OPT_IN)) == {1.0}

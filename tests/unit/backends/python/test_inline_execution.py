"""Cheap non-decoupled Python models execute on the event loop once warmed up (see InlineGate)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from server.scheduling.inline_gate import INLINE_PARAMETER, WARMUP_EXECUTES
from server.types import InferResponse
from tests.support.tensor_models import load_backend, make_request, outputs_of, run_requests
from tests.unit.backends.python.model_files import ADD_ONE_IO, write_model

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


# A non-decoupled model may answer through the response sender instead of returning the response.
THROUGH_SENDER = """
    import threading
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def execute(self, requests):
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
                on_worker = threading.current_thread().name.startswith("hangar-")
                out = [pb_utils.Tensor("Y", x + 1), pb_utils.Tensor("W", np.full([1], on_worker, np.float32))]
                request.get_response_sender().send(
                    pb_utils.InferenceResponse(out), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                )
            return None
"""


# The gate's average decays a slow first execute's weight to ~1% within 32 executes.
COUNT = WARMUP_EXECUTES + 32


def test_unary_fast_path_answers_a_model_that_sends_through_its_sender(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outputs = {"output": [*ADD_ONE_IO["output"], {"name": "W", "data_type": "TYPE_FP32", "dims": ["1"]}]}
    model_dir, cfg = write_model(tmp_path, "sender", THROUGH_SENDER, {**OPT_IN, **outputs})
    backend = load_backend(model_dir, config=cfg)

    async def unary(i: int) -> tuple[float, float, bool]:
        answer = backend.infer_unary(make_request("sender", {"X": np.full(2, i, np.float32)}, str(i)))
        direct = isinstance(answer, InferResponse)
        response = answer if isinstance(answer, InferResponse) else [r async for r in answer][-1]
        out = outputs_of(response)
        return float(out["Y"][0]), float(out["W"][0]), direct

    async def main() -> list[tuple[float, float, bool]]:
        return [await unary(i) for i in range(COUNT)]

    try:
        results = asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        backend.unload()
    assert [y for y, _, _ in results] == [i + 1.0 for i in range(COUNT)]
    ran_inline = [not on_worker for _, on_worker, _ in results]
    assert ran_inline[:WARMUP_EXECUTES] == [False] * WARMUP_EXECUTES and any(ran_inline)
    # the response came through the channel, never directly, wherever the model ran
    assert not any(direct for _, _, direct in results)
    # returning None after answering every request through its sender is what Triton asks for: no error
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

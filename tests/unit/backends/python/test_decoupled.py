"""Decoupled Python models: streamed responses, final flags, cancellation and failures."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from server.errors import BackendError
from server.types import InferResponse
from tests.support.tensor_models import MODEL_REPO, collect, load_backend, make_request, run_requests
from tests.unit.backends.python.model_files import write_model

DECOUPLED = {"model_transaction_policy": {"decoupled": True}}


def stream_request(n: int, delay_ms: int | None = None, request_id: str = "s") -> dict[str, np.ndarray]:
    inputs = {"IN": np.array([n], dtype=np.int32)}
    if delay_ms is not None:
        inputs["DELAY_MS"] = np.array([delay_ms], dtype=np.int32)
    return inputs


def test_streaming_example_sends_n_responses_then_an_empty_final() -> None:
    backend = load_backend(MODEL_REPO / "streaming")
    try:
        [three, zero] = run_requests(
            backend,
            make_request("streaming", stream_request(3), "a"),
            make_request("streaming", stream_request(0)),
        )
    finally:
        backend.unload()
    assert [int(r.outputs[0].data[0]) for r in three[:-1]] == [0, 1, 2]
    assert all(not r.final and r.id == "a" for r in three[:-1])
    assert three[-1].is_empty_final
    assert len(zero) == 1 and zero[0].is_empty_final


def test_streaming_example_stops_early_when_cancelled() -> None:
    backend = load_backend(MODEL_REPO / "streaming")

    async def main() -> list[InferResponse]:
        request = make_request("streaming", stream_request(100_000, delay_ms=1))
        seen: list[InferResponse] = []
        async for response in backend.infer(request):
            seen.append(response)
            if len(seen) == 2:
                request.cancel.cancel()
        return seen

    try:
        seen = asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        backend.unload()  # finalize joins the model's thread: it must have stopped
    assert seen[-1].final and len(seen) < 100
    assert [int(r.outputs[0].data[0]) for r in seen if r.outputs][:2] == [0, 1]


def test_final_flag_may_ride_on_the_last_response_and_later_sends_raise(tmp_path: Path) -> None:
    code = """
        import numpy as np
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def execute(self, requests):
                for r in requests:
                    sender = r.get_response_sender()
                    x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
                    sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x)]))
                    sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x + 1)]),
                                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                    try:
                        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                    except pb_utils.TritonModelException as e:
                        self.late_error = str(e)
                    assert "closed" in self.late_error
    """
    model_dir, config = write_model(tmp_path, "dec", code, DECOUPLED)
    backend = load_backend(model_dir, config=config)
    try:
        [responses] = run_requests(backend, make_request("dec", {"X": np.array([1.0], np.float32)}))
    finally:
        backend.unload()
    assert [r.final for r in responses] == [False, True]
    assert [float(r.outputs[0].data[0]) for r in responses] == [1.0, 2.0]
    assert all(r.error is None for r in responses)


def test_decoupled_failures_end_the_stream_with_an_error(tmp_path: Path) -> None:
    code = """
        import numpy as np
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def execute(self, requests):
                for r in requests:
                    x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
                    if x[0] == 1:
                        r.get_response_sender().send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x)]))
                        raise RuntimeError("died mid-stream")
                    if x[0] == 2:
                        return [pb_utils.InferenceResponse([])]
                    r.get_response_sender().send(
                        pb_utils.InferenceResponse(error=pb_utils.TritonError("bad request")),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return None
    """
    model_dir, config = write_model(tmp_path, "dec_fail", code, DECOUPLED)
    backend = load_backend(model_dir, config=config)

    async def main() -> list[list[InferResponse]]:
        requests = [make_request("dec_fail", {"X": np.array([v], np.float32)}) for v in (1, 2, 3)]
        return [await collect(backend, r) for r in requests]

    try:
        died, returned_list, error_sent = asyncio.run(main())
    finally:
        backend.unload()
    assert len(died) == 2 and died[0].error is None
    assert (
        isinstance(died[1].error, BackendError) and "died mid-stream" in str(died[1].error) and died[1].final
    )
    assert returned_list[-1].error is not None and "must return None" in str(returned_list[-1].error)
    assert len(error_sent) == 1 and error_sent[0].final and str(error_sent[0].error) == "bad request"


def test_error_after_the_final_response_is_logged_not_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The model answers through the sender, then breaks the decoupled contract: the client already has
    its final response, so the error can only be logged, naming the model and the request."""
    code = """
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def execute(self, requests):
                for r in requests:
                    x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
                    r.get_response_sender().send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x)]),
                                                 flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return [pb_utils.InferenceResponse([])]
    """
    model_dir, config = write_model(tmp_path, "dec_late", code, DECOUPLED)
    backend = load_backend(model_dir, config=config)
    try:
        with caplog.at_level(logging.WARNING):
            [responses] = run_requests(
                backend, make_request("dec_late", {"X": np.array([4.0], np.float32)}, "late-1")
            )
    finally:
        backend.unload()
    assert len(responses) == 1 and responses[0].error is None and responses[0].final
    late = [r.getMessage() for r in caplog.records if "already answered" in r.getMessage()]
    assert len(late) == 1 and "'dec_late'" in late[0] and "'late-1'" in late[0]
    assert "must return None" in late[0]

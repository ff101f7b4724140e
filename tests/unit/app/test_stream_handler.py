"""ModelStreamInfer over real gRPC: ordering, decoupled finals, errors, half-close and cancellation."""

from __future__ import annotations

import queue
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.support.server import RunningServer, wait_until
from tests.support.tensors import fp32
from tests.unit.app.scripted_backend import Journal

WAIT_S = 30.0
Item = tuple[Any, Any]


class Stream:
    """A tritonclient stream whose callbacks land in a queue the test reads with deadlines."""

    def __init__(self, client: grpcclient.InferenceServerClient, headers: dict[str, str] | None = None):
        self.client = client
        self.items: queue.Queue[Item] = queue.Queue()
        client.start_stream(callback=lambda result, error: self.items.put((result, error)), headers=headers)

    def send(self, model: str, request_id: str, values: list[float] | None = None, **kw: Any) -> None:
        inputs = [fp32("IN", values if values is not None else [1.0, 2.0])]
        self.client.async_stream_infer(model, inputs, request_id=request_id, **kw)

    def next(self) -> Item:
        return self.items.get(timeout=WAIT_S)

    def results(self, n: int) -> list[grpcclient.InferResult]:
        out = []
        for _ in range(n):
            result, error = self.next()
            assert error is None, error
            out.append(result)
        return out


def final_flag(result: grpcclient.InferResult) -> bool:
    return bool(result.get_response().parameters["triton_final_response"].bool_param)


def test_non_decoupled_responses_come_in_request_order(client: grpcclient.InferenceServerClient) -> None:
    stream = Stream(client)
    stream.send("plain", "slow", parameters={"delay_ms": 300})
    stream.send("plain", "fast")
    stream.send("missing_model", "bad")
    first, second = stream.results(2)
    assert [first.get_response().id, second.get_response().id] == ["slow", "fast"]
    assert final_flag(first) and final_flag(second)
    _, error = stream.next()
    assert "missing_model" in error.message()
    client.stop_stream()


def test_decoupled_responses_interleave_and_carry_final_flags(
    client: grpcclient.InferenceServerClient,
) -> None:
    stream = Stream(client)
    stream.send("dec", "a", parameters={"responses": 3, "delay_ms": 40})
    stream.send("dec", "b", parameters={"responses": 2, "delay_ms": 10})
    got = stream.results(5)
    by_id: dict[str, list[grpcclient.InferResult]] = {}
    for r in got:
        by_id.setdefault(r.get_response().id, []).append(r)
    assert [final_flag(r) for r in by_id["a"]] == [False, False, True]
    assert [final_flag(r) for r in by_id["b"]] == [False, True]
    np.testing.assert_array_equal(by_id["a"][2].as_numpy("OUT"), [3.0, 4.0])
    # b finishes first although it was sent second: decoupled responses are not held back.
    assert got[-1].get_response().id == "a"
    assert all(r.get_response().model_version == "1" for r in got)
    client.stop_stream()


def test_empty_final_only_when_requested(client: grpcclient.InferenceServerClient) -> None:
    stream = Stream(client)
    stream.send("dec", "quiet", parameters={"responses": 1, "empty_final": True})
    stream.send(
        "dec", "loud", parameters={"responses": 1, "empty_final": True}, enable_empty_final_response=True
    )
    client.stop_stream()  # half-close: returns once every response was written
    got = []
    while not stream.items.empty():
        result, error = stream.items.get_nowait()
        assert error is None
        got.append((result.get_response().id, final_flag(result), len(result.get_response().outputs)))
    assert sorted(got) == [("loud", False, 1), ("loud", True, 0), ("quiet", False, 1)]


def test_failed_request_reports_error_and_stream_stays_open(client: grpcclient.InferenceServerClient) -> None:
    stream = Stream(client)
    stream.send("plain", "boom", parameters={"fail": "model exploded on purpose"})
    _, error = stream.next()
    assert "model exploded on purpose" in error.message()
    stream.send("plain", "bad-shape", values=[[1.0]])  # rank 2 against dims [-1]
    _, error = stream.next()
    assert "IN" in error.message() and "plain" in error.message()
    stream.send("dec", "crash", parameters={"crash": "bug 77"})
    _, error = stream.next()
    assert "RuntimeError: bug 77" in error.message()
    stream.send("plain", "after")
    (result,) = stream.results(1)
    assert result.get_response().id == "after"
    client.stop_stream()


@pytest.mark.parametrize(
    ("model", "params", "code", "text"),
    [
        ("plain", {"fail": "exploded"}, "StatusCode.INTERNAL", "exploded"),
        ("nope", {}, "StatusCode.NOT_FOUND", "nope"),
    ],
)
def test_grpc_error_header_closes_stream_with_status(
    client: grpcclient.InferenceServerClient, model: str, params: dict[str, Any], code: str, text: str
) -> None:
    stream = Stream(client, headers={"triton_grpc_error": "true"})
    stream.send(model, "x", parameters=params)
    _, error = stream.next()
    assert error.status() == code
    assert text in error.message()
    client.stop_stream()


def test_half_close_finishes_in_flight_requests(client: grpcclient.InferenceServerClient) -> None:
    stream = Stream(client)
    stream.send("plain", "late", parameters={"delay_ms": 400})
    stream.send("dec", "tokens", parameters={"responses": 3, "delay_ms": 100})
    client.stop_stream()  # WritesDone; waits for the server to end the call with OK
    ids = []
    while not stream.items.empty():
        result, error = stream.items.get_nowait()
        assert error is None
        ids.append(result.get_response().id)
    assert sorted(ids) == ["late", "tokens", "tokens", "tokens"]


def test_cancelling_the_stream_cancels_in_flight_requests(
    client: grpcclient.InferenceServerClient, server: RunningServer, journal: Journal
) -> None:
    fails_before = _failures(server, "plain")
    journal.blocked.clear()
    stream = Stream(client)
    stream.send("plain", "stuck-stream", parameters={"block": True})
    assert journal.blocked.wait(WAIT_S)
    client.stop_stream(cancel_requests=True)
    wait_until(lambda: "stuck-stream" in journal.cancelled, WAIT_S, what="cancellation to reach the model")
    wait_until(
        lambda: _failures(server, "plain") == fails_before + 1, WAIT_S, what="the failure to be counted"
    )


def _failures(server: RunningServer, model: str) -> int:
    (loaded,) = [v for v in server.manager.loaded_versions() if v.name == model]
    return loaded.stats.snapshot().fail.count

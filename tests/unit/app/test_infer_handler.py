"""ModelInfer over real gRPC: success, status codes per failure kind, stats per outcome, cancellation."""

from __future__ import annotations

import queue
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from server.stats import FailureReason, StatsSnapshot
from tests.support.server import RunningServer, wait_until
from tests.support.tensors import fp32
from tests.unit.app.scripted_backend import Journal

WAIT_S = 30.0


def stats(server: RunningServer, model: str) -> StatsSnapshot:
    (loaded,) = [v for v in server.manager.loaded_versions() if v.name == model]
    return loaded.stats.snapshot()


def test_infer_echoes_and_names_the_serving_version(
    client: grpcclient.InferenceServerClient, server: RunningServer
) -> None:
    before = stats(server, "plain").success.count
    result = client.infer("plain", [fp32("IN", [1.5, 2.5])], request_id="r-1")
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("plain", "1", "r-1")
    np.testing.assert_array_equal(result.as_numpy("OUT"), [1.5, 2.5])
    assert response.parameters["version"].int64_param == 1
    after = stats(server, "plain")
    assert after.success.count == before + 1
    assert after.success.ns > 0


def test_decoupled_model_is_refused_on_model_infer(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("dec", [fp32("IN", [1.0])])
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "ModelInfer RPC doesn't support models with decoupled transaction policy" in info.value.message()
    assert "'dec'" in info.value.message()


@pytest.mark.parametrize(
    ("params", "code", "text", "reason"),
    [
        ({"fail": "kaboom-42"}, "StatusCode.INTERNAL", "kaboom-42", FailureReason.BACKEND),
        (
            {"reject": "queue is full (7)"},
            "StatusCode.UNAVAILABLE",
            "queue is full (7)",
            FailureReason.REJECTED,
        ),
    ],
)
def test_backend_failures_map_to_status_and_failure_reason(
    client: grpcclient.InferenceServerClient,
    server: RunningServer,
    params: dict[str, Any],
    code: str,
    text: str,
    reason: FailureReason,
) -> None:
    before = stats(server, "plain").failures_by_reason[reason]
    with pytest.raises(InferenceServerException) as info:
        client.infer("plain", [fp32("IN", [1.0])], parameters=params)
    assert info.value.status() == code
    assert text in info.value.message()
    assert stats(server, "plain").failures_by_reason[reason] == before + 1
    # The model keeps serving.
    assert client.infer("plain", [fp32("IN", [3.0])]).as_numpy("OUT").tolist() == [3.0]


@pytest.mark.parametrize(
    ("model", "version", "code", "text"),
    [
        ("no_such_model", "", "StatusCode.NOT_FOUND", "no_such_model"),
        ("plain", "7", "StatusCode.NOT_FOUND", "version 7"),
        ("plain", "one", "StatusCode.INVALID_ARGUMENT", "'one'"),
    ],
)
def test_unknown_model_or_version(
    client: grpcclient.InferenceServerClient, model: str, version: str, code: str, text: str
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [fp32("IN", [1.0])], model_version=version)
    assert info.value.status() == code
    assert text in info.value.message()


def test_bad_input_counts_as_other_failure(
    client: grpcclient.InferenceServerClient, server: RunningServer
) -> None:
    before = stats(server, "plain").failures_by_reason[FailureReason.OTHER]
    with pytest.raises(InferenceServerException) as info:
        client.infer("plain", [fp32("WRONG", [1.0])])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "WRONG" in info.value.message()
    assert stats(server, "plain").failures_by_reason[FailureReason.OTHER] == before + 1


def test_client_cancel_reaches_the_model(
    client: grpcclient.InferenceServerClient, server: RunningServer, journal: Journal
) -> None:
    before = stats(server, "plain").failures_by_reason[FailureReason.CANCELED]
    journal.blocked.clear()
    done: queue.Queue[Any] = queue.Queue()
    call = client.async_infer(
        "plain",
        [fp32("IN", [1.0])],
        callback=lambda result, error: done.put(error),
        request_id="stuck-unary",
        parameters={"block": True},
    )
    assert journal.blocked.wait(WAIT_S)
    call.cancel()
    error = done.get(timeout=WAIT_S)
    assert error is not None and error.status() == "StatusCode.CANCELLED"
    wait_until(lambda: "stuck-unary" in journal.cancelled, WAIT_S, what="is_cancelled() in the model")
    wait_until(
        lambda: stats(server, "plain").failures_by_reason[FailureReason.CANCELED] == before + 1,
        WAIT_S,
        what="a CANCELED failure in the stats",
    )


def test_statistics_rpc_reports_every_loaded_model(client: grpcclient.InferenceServerClient) -> None:
    client.infer("plain", [fp32("IN", [1.0])])
    everything = client.get_inference_statistics()
    assert sorted((s.name, s.version) for s in everything.model_stats) == [
        ("batched", "2"),
        ("dec", "1"),
        ("plain", "1"),
    ]
    (plain,) = client.get_inference_statistics("plain", "1").model_stats
    assert plain.inference_stats.success.count >= 1
    assert plain.last_inference > 0
    with pytest.raises(InferenceServerException) as info:
        client.get_inference_statistics("ghost")
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and "'ghost'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.get_inference_statistics("plain", "x1")
    assert "'x1'" in info.value.message()

"""HangarServer: health, reflection, readiness, and a graceful stop that drains unary calls and streams."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tritonclient.utils import InferenceServerException

from server.protocol.gen import health_pb2, health_pb2_grpc
from tests.support.server import RunningServer, running_server, start_server, wait_until
from tests.support.tensors import fp32
from tests.unit.app.scripted_backend import Journal, scripted_registry, write_model

WAIT_S = 30.0


def health_status(url: str) -> int:
    with grpc.insecure_channel(url) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=WAIT_S
        )
    return int(reply.status)


def test_health_serving_and_reflection_lists_services(server: RunningServer) -> None:
    assert health_status(server.url) == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(server.url) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
        service = DescriptorPool(db).FindServiceByName("inference.GRPCInferenceService")
        assert {"ModelInfer", "ModelStreamInfer", "RepositoryIndex"} <= {m.name for m in service.methods}


def test_failed_model_makes_server_not_ready(tmp_path: Path) -> None:
    write_model(tmp_path, "good")
    broken = write_model(tmp_path, "broken")
    (broken / "config.pbtxt").write_text('backend: "no_such_backend"\nmax_batch_size: 0\n')
    with running_server(tmp_path, registry=scripted_registry(Journal())) as srv:
        client = grpcclient.InferenceServerClient(srv.url)
        assert client.is_server_live()
        assert not client.is_server_ready()
        assert health_status(srv.url) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert client.is_model_ready("good") and not client.is_model_ready("broken")
        index = {m.name: m for m in client.get_model_repository_index().models}
        assert index["broken"].state == "UNAVAILABLE" and "no_such_backend" in index["broken"].reason
        # Without strict readiness, one broken model does not make the server unready.
    with running_server(tmp_path, registry=scripted_registry(Journal()), strict_readiness=False) as srv:
        assert grpcclient.InferenceServerClient(srv.url).is_server_ready()


@pytest.fixture
def own_server(tmp_path: Path) -> Any:
    journal = Journal()
    write_model(tmp_path, "plain")
    srv = start_server(tmp_path, registry=scripted_registry(journal), exit_timeout_secs=20.0)
    try:
        yield srv, journal
    finally:
        srv.stop()


def _stop_in_background(srv: RunningServer) -> threading.Thread:
    t = threading.Thread(target=srv.stop, name="stopper")
    t.start()
    return t


def test_stop_finishes_in_flight_unary_calls(own_server: tuple[RunningServer, Journal]) -> None:
    srv, journal = own_server
    client = grpcclient.InferenceServerClient(srv.url)
    results: queue.Queue[Any] = queue.Queue()
    client.async_infer(
        "plain",
        [fp32("IN", [4.0])],
        callback=lambda result, error: results.put((result, error)),
        request_id="in-flight",
        parameters={"delay_ms": 600},
    )
    wait_until(lambda: "in-flight" in journal.started, WAIT_S, what="the request to reach the model")
    stopper = _stop_in_background(srv)
    result, error = results.get(timeout=WAIT_S)
    assert error is None, error
    assert result.as_numpy("OUT").tolist() == [4.0]
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    with pytest.raises(InferenceServerException):
        grpcclient.InferenceServerClient(srv.url).is_server_live(client_timeout=5)


def test_stop_drains_open_streams_then_closes_them(own_server: tuple[RunningServer, Journal]) -> None:
    srv, journal = own_server
    client = grpcclient.InferenceServerClient(srv.url)
    items: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: items.put((result, error)))
    client.async_stream_infer("plain", [fp32("IN", [1.0])], request_id="s1", parameters={"delay_ms": 600})
    wait_until(lambda: "s1" in journal.started, WAIT_S, what="the stream request to reach the model")
    t0 = time.monotonic()
    stopper = _stop_in_background(srv)
    result, error = items.get(timeout=WAIT_S)
    assert error is None and result.get_response().id == "s1"
    _, closed = items.get(timeout=WAIT_S)
    assert closed.status() == "StatusCode.UNAVAILABLE" and "shutting down" in closed.message()
    stopper.join(WAIT_S)
    # The open stream did not hold shutdown for the whole 20 s exit timeout.
    assert time.monotonic() - t0 < 15.0
    client.stop_stream()


def test_exit_timeout_cancels_stuck_requests(tmp_path: Path) -> None:
    journal = Journal()
    write_model(tmp_path, "plain")
    srv = start_server(tmp_path, registry=scripted_registry(journal), exit_timeout_secs=0.5)
    try:
        client = grpcclient.InferenceServerClient(srv.url)
        errors: queue.Queue[Any] = queue.Queue()
        client.async_infer(
            "plain", [fp32("IN", [1.0])], callback=lambda result, error: errors.put(error),
            request_id="stuck", parameters={"block": True},
        )  # fmt: skip
        assert journal.blocked.wait(WAIT_S)
    finally:
        srv.stop()
    wait_until(lambda: "stuck" in journal.cancelled, WAIT_S, what="the stuck request to be cancelled")
    assert errors.get(timeout=WAIT_S) is not None


def test_port_in_use_fails_start_naming_the_address(server: RunningServer, tmp_path: Path) -> None:
    write_model(tmp_path, "plain")
    with pytest.raises(OSError, match=f"127.0.0.1:{server.port}"):
        start_server(tmp_path, registry=scripted_registry(Journal()), grpc_port=server.port)

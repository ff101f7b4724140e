"""Our stubs live in a private descriptor pool, coexist with tritonclient's, and serve reflection."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from server.protocol.gen import POOL, grpc_service_pb2, grpc_service_pb2_grpc, health_pb2


def test_messages_are_registered_in_the_private_pool_only() -> None:
    desc = POOL.FindMessageTypeByName("inference.ModelInferRequest")
    assert desc is grpc_service_pb2.ModelInferRequest.DESCRIPTOR
    assert POOL.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest") is (
        health_pb2.HealthCheckRequest.DESCRIPTOR
    )
    default = descriptor_pool.Default()
    try:
        other = default.FindMessageTypeByName("inference.ModelInferRequest")
    except KeyError:
        return
    assert other is not desc


def test_tritonclient_and_our_stubs_import_together() -> None:
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
    assert service_pb2.ModelInferRequest is not grpc_service_pb2.ModelInferRequest
    assert service_pb2.ModelInferRequest.DESCRIPTOR.full_name == "inference.ModelInferRequest"


class _Live(grpc_service_pb2_grpc.GRPCInferenceServiceServicer):
    def ServerLive(self, request, context):  # type: ignore[no-untyped-def]
        return grpc_service_pb2.ServerLiveResponse(live=True)


@pytest.fixture
def server_port() -> object:
    reflection = pytest.importorskip("grpc_reflection.v1alpha.reflection")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_Live(), server)
    names = (
        grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server, pool=POOL)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


def test_generated_stub_and_reflection_work_over_grpc(server_port: int) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(grpc_service_pb2.ServerLiveRequest(), timeout=10).live is True
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
        ])
        listed, files = list(refl.ServerReflectionInfo(requests, timeout=10))
    services = {s.name for s in listed.list_services_response.service}
    assert "inference.GRPCInferenceService" in services
    names = set()
    for raw in files.file_descriptor_response.file_descriptor_proto:
        names.add(descriptor_pb2.FileDescriptorProto.FromString(raw).name)
    assert "grpc_service.proto" in names

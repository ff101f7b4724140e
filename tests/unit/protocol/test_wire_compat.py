"""Our descriptors equal tritonclient's (and grpc_health's) field for field, in both directions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from server.protocol.gen import grpc_service_pb2, health_pb2, model_config_pb2

tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import model_config_pb2 as triton_config_pb2  # noqa: E402
from tritonclient.grpc import service_pb2 as triton_service_pb2  # noqa: E402

health_ref = pytest.importorskip("grpc_health.v1.health_pb2")

FieldKey = tuple[str, int, int, int, str, str]


def _file_proto(fd: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(proto)
    return proto


def _messages(
    prefix: str, messages: list[descriptor_pb2.DescriptorProto]
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    for m in messages:
        name = f"{prefix}.{m.name}"
        yield name, m
        yield from _messages(name, list(m.nested_type))


def _fields(m: descriptor_pb2.DescriptorProto) -> dict[str, FieldKey]:
    out: dict[str, FieldKey] = {}
    for f in m.field:
        oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else ""
        out[f.name] = (f.name, f.number, f.type, f.label, f.type_name, oneof)
    return out


def _enums(prefix: str, proto: descriptor_pb2.FileDescriptorProto) -> dict[str, dict[str, int]]:
    out = {f"{prefix}.{e.name}": {v.name: v.number for v in e.value} for e in proto.enum_type}
    for name, m in _messages(prefix, list(proto.message_type)):
        out.update({f"{name}.{e.name}": {v.name: v.number for v in e.value} for e in m.enum_type})
    return out


def _services(proto: descriptor_pb2.FileDescriptorProto) -> dict[str, tuple[str, str, bool, bool]]:
    return {
        f"{s.name}/{m.name}": (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
        for s in proto.service
        for m in s.method
    }


PAIRS = [
    pytest.param(model_config_pb2.DESCRIPTOR, triton_config_pb2.DESCRIPTOR, id="model_config"),
    pytest.param(grpc_service_pb2.DESCRIPTOR, triton_service_pb2.DESCRIPTOR, id="grpc_service"),
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_same_package_and_syntax(ours: FileDescriptor, theirs: FileDescriptor) -> None:
    a, b = _file_proto(ours), _file_proto(theirs)
    assert (a.package, a.syntax, list(a.dependency)) == (b.package, b.syntax, list(b.dependency))


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_every_message_and_field_matches(ours: FileDescriptor, theirs: FileDescriptor) -> None:
    a, b = _file_proto(ours), _file_proto(theirs)
    mine = dict(_messages("." + a.package, list(a.message_type)))
    ref = dict(_messages("." + b.package, list(b.message_type)))
    assert sorted(mine) == sorted(ref), "message sets differ"
    for name in ref:
        assert _fields(mine[name]) == _fields(ref[name]), f"fields of {name} differ"
        assert [o.name for o in mine[name].oneof_decl] == [o.name for o in ref[name].oneof_decl], name
        assert mine[name].options.map_entry == ref[name].options.map_entry, name


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_every_enum_matches(ours: FileDescriptor, theirs: FileDescriptor) -> None:
    a, b = _file_proto(ours), _file_proto(theirs)
    assert _enums(a.package, a) == _enums(b.package, b)


def test_every_service_method_matches() -> None:
    a, b = _file_proto(grpc_service_pb2.DESCRIPTOR), _file_proto(triton_service_pb2.DESCRIPTOR)
    assert [s.name for s in a.service] == ["GRPCInferenceService"]
    assert _services(a) == _services(b)
    assert len(_services(a)) == 20


def test_health_is_grpc_health_v1_with_check_only() -> None:
    a, b = _file_proto(health_pb2.DESCRIPTOR), _file_proto(health_ref.DESCRIPTOR)
    assert a.package == b.package == "grpc.health.v1"
    mine = dict(_messages("." + a.package, list(a.message_type)))
    ref = dict(_messages("." + b.package, list(b.message_type)))
    assert sorted(mine) == sorted(ref)
    for name in ref:
        assert _fields(mine[name]) == _fields(ref[name]), name
    assert _enums(a.package, a) == _enums(b.package, b)
    ref_methods = _services(b)
    assert _services(a) == {"Health/Check": ref_methods["Health/Check"]}


def test_bytes_round_trip_between_our_stubs_and_tritonclients() -> None:
    ours = grpc_service_pb2.ModelInferRequest(model_name="m", model_version="2", id="r1")
    ours.parameters["priority"].uint64_param = 3
    t = ours.inputs.add(name="IN", datatype="BYTES", shape=[2])
    t.contents.bytes_contents.extend([b"a\x00b", b""])
    ours.outputs.add(name="OUT")
    ours.raw_input_contents.append(b"\x01\x02")
    theirs = triton_service_pb2.ModelInferRequest.FromString(ours.SerializeToString())
    assert theirs.parameters["priority"].uint64_param == 3
    assert list(theirs.inputs[0].contents.bytes_contents) == [b"a\x00b", b""]
    assert theirs.SerializeToString(deterministic=True) == ours.SerializeToString(deterministic=True)
    cfg = model_config_pb2.ModelConfig(name="m", backend="python", max_batch_size=4)
    cfg.model_transaction_policy.decoupled = True
    back = triton_config_pb2.ModelConfig.FromString(cfg.SerializeToString())
    assert (back.name, back.backend, back.max_batch_size, back.model_transaction_policy.decoupled) == (
        "m", "python", 4, True)

"""InferParameter maps <-> Python values and Triton's reserved-parameter rules."""

from __future__ import annotations

import pytest

from server.errors import BackendError, InvalidInput
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.parameters import params_from_pb, params_to_pb, request_params_from_pb


def _request(**values: tuple[str, object]) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest()
    for key, (kind, value) in values.items():
        setattr(msg.parameters[key], kind, value)
    return msg


def test_every_oneof_kind_becomes_a_python_value() -> None:
    msg = _request(
        b=("bool_param", True), i=("int64_param", -5), s=("string_param", "x"),
        d=("double_param", 0.25), u=("uint64_param", 2**64 - 1),
    )  # fmt: skip
    assert request_params_from_pb(msg.parameters) == {"b": True, "i": -5, "s": "x", "d": 0.25, "u": 2**64 - 1}


@pytest.mark.parametrize(
    ("key", "kind", "value", "fragment"),
    [
        ("sequence_id", "bool_param", True, "expected int64_param or string_param."),
        ("sequence_start", "int64_param", 1, "'sequence_start' parameter, expected bool_param."),
        ("sequence_end", "string_param", "y", "'sequence_end' parameter, expected bool_param."),
        ("priority", "double_param", 1.0, "expected int64_param or uint64_param."),
        ("priority", "int64_param", -3, "invalid value for 'priority', expected value >= 0."),
        ("timeout", "uint64_param", 5, "'timeout' parameter, expected int64_param."),
        ("triton_enable_empty_final_response", "int64_param", 1, "expected bool_param."),
        ("triton_other", "bool_param", True, "Only the following keys starting with 'triton_'"),
    ],
)
def test_reserved_keys_are_checked_like_triton(key: str, kind: str, value: object, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        request_params_from_pb(_request(**{key: (kind, value)}).parameters)
    assert fragment in str(info.value)


def test_reserved_keys_with_the_right_kinds_pass() -> None:
    msg = _request(
        sequence_id=("string_param", "corr-1"), sequence_start=("bool_param", True),
        priority=("uint64_param", 1), timeout=("int64_param", 100),
        triton_enable_empty_final_response=("bool_param", True),
    )  # fmt: skip
    assert request_params_from_pb(msg.parameters)["sequence_id"] == "corr-1"


def test_response_parameters_round_trip() -> None:
    msg = pb.ModelInferResponse()
    values = {"flag": False, "n": 7, "big": 2**63, "ratio": 1.5, "text": "hi"}
    params_to_pb(values, msg.parameters)
    assert msg.parameters["flag"].WhichOneof("parameter_choice") == "bool_param"
    assert msg.parameters["big"].WhichOneof("parameter_choice") == "uint64_param"
    assert params_from_pb(msg.parameters) == values


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, [1], None])
def test_unrepresentable_response_parameters_are_backend_errors(value: object) -> None:
    with pytest.raises(BackendError, match="'k'"):
        params_to_pb({"k": value}, pb.ModelInferResponse().parameters)  # type: ignore[dict-item]

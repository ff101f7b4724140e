"""InferParameter maps <-> Python values, with Triton's checks on the reserved request parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.errors import BackendError, InvalidInput
from server.types import ParamValue

ENABLE_EMPTY_FINAL = "triton_enable_empty_final_response"
"""Request parameter (bool): also send a flags-only final response on a stream (PROTOCOL.md 2)."""
FINAL_RESPONSE = "triton_final_response"
"""Response parameter (bool) on every streamed response: true on the request's last one."""

# Triton accepts only these `triton_`-prefixed request keys (server src/grpc/infer_handler.cc).
RESERVED_TRITON_KEYS = (ENABLE_EMPTY_FINAL,)
_UINT64_MAX = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

# Allowed oneof kinds of the reserved keys, and the wording Triton uses when the kind is wrong.
_RESERVED_KINDS: dict[str, tuple[frozenset[str], str]] = {
    "sequence_id": (frozenset({"int64_param", "string_param"}), "int64_param or string_param"),
    "sequence_start": (frozenset({"bool_param"}), "bool_param"),
    "sequence_end": (frozenset({"bool_param"}), "bool_param"),
    "priority": (frozenset({"int64_param", "uint64_param"}), "int64_param or uint64_param"),
    "timeout": (frozenset({"int64_param"}), "int64_param"),
    ENABLE_EMPTY_FINAL: (frozenset({"bool_param"}), "bool_param"),
}


def request_params_from_pb(params: Mapping[str, Any]) -> dict[str, ParamValue]:
    """A request's `parameters` map as Python values, checking the reserved keys as Triton does."""
    out: dict[str, ParamValue] = {}
    for key, param in params.items():
        kind = param.WhichOneof("parameter_choice")
        if kind is None:
            raise InvalidInput(f"invalid value type for '{key}' parameter, no value is set")
        reserved = _RESERVED_KINDS.get(key)
        if reserved is None and key.startswith("triton_"):
            raise InvalidInput(
                "parameter keys starting with 'triton_' are reserved for Triton usage. Only the "
                f"following keys starting with 'triton_' are allowed: {' '.join(RESERVED_TRITON_KEYS)}"
            )
        if reserved is not None and kind not in reserved[0]:
            raise InvalidInput(f"invalid value type for '{key}' parameter, expected {reserved[1]}.")
        value = getattr(param, kind)
        if key == "priority" and value < 0:
            raise InvalidInput("invalid value for 'priority', expected value >= 0.")
        out[key] = value
    return out


def params_from_pb(params: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Any InferParameter map (tensor or response parameters) as Python values; unset entries are skipped."""
    out: dict[str, ParamValue] = {}
    for key, param in params.items():
        kind = param.WhichOneof("parameter_choice")
        if kind is not None:
            out[key] = getattr(param, kind)
    return out


def params_to_pb(values: Mapping[str, ParamValue], target: Any) -> None:
    """Fills an InferParameter map field from server-produced Python values (bool, int, float, str)."""
    for key, value in values.items():
        param = target[key]
        # bool first: it is an int subclass.
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            if _INT64_MIN <= value <= _INT64_MAX:
                param.int64_param = value
            elif 0 <= value <= _UINT64_MAX:
                param.uint64_param = value
            else:
                raise BackendError(f"parameter '{key}' value {value} does not fit in 64 bits")
        elif isinstance(value, float):
            param.double_param = value
        elif isinstance(value, str):
            param.string_param = value
        else:
            raise BackendError(f"parameter '{key}' has unsupported type {type(value).__name__}")

"""ModelInferRequest -> domain InferRequest; domain InferResponse -> ModelInferResponse, stream messages."""

from __future__ import annotations

import re
from typing import Any

from server.errors import InvalidInput, Unsupported
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.parameters import (
    FINAL_RESPONSE,
    params_to_pb,
    request_params_from_pb,
)
from server.protocol.status import status_of
from server.protocol.tensor_codec import decode_raw, decode_typed, encode_raw
from server.types import DataType, InferRequest, InferResponse, Tensor
from server.validation import request_prefix

_DATATYPES = {dt.value: dt for dt in DataType}
_API_NAMES = {dt: dt.value for dt in DataType}
_SHM_KEYS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
_NO_SHM = "which this server does not serve"
_VERSION = re.compile(r"-?[0-9]{1,18}")


def parse_model_version(version: str) -> int | None:
    """A request's model_version string: None when empty (the policy picks), else a non-negative int."""
    if not version:
        return None
    if _VERSION.fullmatch(version) is None:
        raise InvalidInput(
            f"failed to get model version from specified version string '{version}' "
            "(details: not an integer), version should be an integral value > 0"
        )
    value = int(version)
    if value < 0:
        raise InvalidInput(
            f"invalid model version specified '{version}' , version should be an integral value > 0"
        )
    return value


def request_from_pb(request: pb.ModelInferRequest) -> InferRequest:
    """Decodes a ModelInferRequest (inputs raw or typed, parameters, requested outputs) into the domain.

    Numeric input arrays are read-only views of the request's bytes; copy before writing to them.
    Raises InvalidInput (or Unsupported for client shared memory and classification) naming the value.
    """
    parse_model_version(request.model_version)
    return InferRequest(
        model_name=request.model_name,
        model_version=request.model_version,
        id=request.id,
        inputs=_decode_inputs(request, request.model_name, request_prefix(request.id)),
        requested_outputs=_requested_outputs(request.outputs, request.model_name),
        parameters=request_params_from_pb(request.parameters),
    )


def _decode_inputs(request: pb.ModelInferRequest, model: str, prefix: str) -> dict[str, Tensor]:
    raw = request.raw_input_contents
    inputs: dict[str, Tensor] = {}
    raw_used = 0
    for inp in request.inputs:
        name = inp.name
        if name in inputs:
            raise InvalidInput(f"{prefix}input '{name}' already exists in request")
        dtype = _datatype(inp.datatype, name, model)
        if inp.parameters and any(k in inp.parameters for k in _SHM_KEYS):
            raise Unsupported(f"input '{name}' for model '{model}' uses client shared memory, {_NO_SHM}")
        shape = tuple(inp.shape)
        if inp.HasField("contents"):
            if raw:
                raise InvalidInput(
                    f"contents field must not be specified when using raw_input_contents for '{name}' "
                    f"for model '{model}'"
                )
            data = decode_typed(name, dtype, shape, inp.contents, model, prefix)
        elif raw_used < len(raw):
            data = decode_raw(name, dtype, shape, raw[raw_used], model, prefix)
            raw_used += 1
        else:
            raise InvalidInput(
                f"unable to find data for input tensor '{name}' for model '{model}' in request."
            )
        inputs[name] = Tensor(name, dtype, data)
    if raw_used != len(raw):
        raise InvalidInput(
            f"{prefix}expected {raw_used} raw_input_contents (one per input) for model '{model}', "
            f"got {len(raw)}"
        )
    return inputs


def _datatype(name: str, tensor: str, model: str) -> DataType:
    dtype = _DATATYPES.get(name)
    if dtype is None:
        raise InvalidInput(f"invalid datatype '{name}' for input '{tensor}' for model '{model}'")
    return dtype


def _requested_outputs(outputs: Any, model: str) -> tuple[str, ...] | None:
    if not outputs:
        return None
    names: dict[str, None] = {}
    for out in outputs:
        if out.parameters and any(k in out.parameters for k in _SHM_KEYS):
            raise Unsupported(
                f"output '{out.name}' for model '{model}' uses client shared memory, {_NO_SHM}"
            )
        if "classification" in out.parameters:
            raise Unsupported(f"classification of output '{out.name}' for model '{model}' is not supported")
        names[out.name] = None
    return tuple(names)


def response_to_pb(response: InferResponse) -> pb.ModelInferResponse:
    """A ModelInferResponse with every output in raw_output_contents (Triton always answers raw)."""
    msg = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    if response.parameters:
        params_to_pb(response.parameters, msg.parameters)
    raw = msg.raw_output_contents
    for tensor in response.outputs:
        msg.outputs.add(name=tensor.name, datatype=_API_NAMES[tensor.datatype], shape=tensor.data.shape)
        raw.append(encode_raw(tensor))
    return msg


def stream_response_to_pb(response: InferResponse) -> pb.ModelStreamInferResponse:
    """A ModelStreamInferResponse for one response of a streamed request.

    Data (or an empty final) carries `triton_final_response` = response.final; a response with `error`
    set becomes an error message that names the failed request by its id.
    """
    if response.error is not None:
        return stream_error_to_pb(response.error, response.id)
    msg = pb.ModelStreamInferResponse(infer_response=response_to_pb(response))
    msg.infer_response.parameters[FINAL_RESPONSE].bool_param = response.final
    return msg


def stream_error_to_pb(error: BaseException | str, request_id: str) -> pb.ModelStreamInferResponse:
    """The stream message for a failed request: error_message, and only the id in infer_response."""
    message = error if isinstance(error, str) else status_of(error)[1]
    msg = pb.ModelStreamInferResponse(error_message=message)
    msg.infer_response.id = request_id
    return msg

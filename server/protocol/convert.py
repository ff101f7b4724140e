"""ModelInferRequest -> domain InferRequest; domain InferResponse -> ModelInferResponse, stream messages."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from server.errors import InvalidInput, Unsupported
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.parameters import (
    FINAL_RESPONSE,
    params_to_pb,
    request_params_from_pb,
)
from server.protocol.status import status_of
from server.protocol.tensor_codec import decode_raw, decode_typed, encode_raw
from server.types import DataType, InferRequest, InferResponse, Tensor, new_tensor
from server.validation import request_prefix

# API string -> (datatype, numpy dtype, wire bytes per element; 0 for BYTES): one lookup per input.
_DECODE: dict[str, tuple[DataType, np.dtype, int]] = {
    dt.value: (dt, dt.numpy_dtype, dt.itemsize) for dt in DataType
}
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
    version, model = request.model_version, request.model_name
    outputs, params = request.outputs, request.parameters
    if version:
        parse_model_version(version)
    return InferRequest(
        model_name=model,
        model_version=version,
        id=request.id,
        inputs=_decode_inputs(request, model),
        requested_outputs=_requested_outputs(outputs, model) if outputs else None,
        parameters=request_params_from_pb(params) if params else {},
    )


def _decode_inputs(request: pb.ModelInferRequest, model: str) -> dict[str, Tensor]:
    """Runs for every request: the common case (raw numeric data of the right size) stays inline,
    anything else goes through tensor_codec, which owns the checks and their wording."""
    raw = request.raw_input_contents
    n_raw = len(raw)
    inputs: dict[str, Tensor] = {}
    raw_used = 0
    # Slices first: iterating a repeated field itself is 2-3x slower (upb wraps each access).
    for inp in request.inputs[:]:
        name = inp.name
        if name in inputs:
            raise InvalidInput(f"{request_prefix(request.id)}input '{name}' already exists in request")
        spec = _DECODE.get(inp.datatype)
        if spec is None:
            raise _bad_datatype(inp.datatype, name, model)
        dtype, np_dtype, itemsize = spec
        if inp.parameters and any(k in inp.parameters for k in _SHM_KEYS):
            raise Unsupported(f"input '{name}' for model '{model}' uses client shared memory, {_NO_SHM}")
        shape = inp.shape[:]
        if inp.HasField("contents"):
            if raw:
                raise InvalidInput(
                    f"contents field must not be specified when using raw_input_contents for '{name}' "
                    f"for model '{model}'"
                )
            data = decode_typed(name, dtype, tuple(shape), inp.contents, model, request_prefix(request.id))
        elif raw_used < n_raw:
            content = raw[raw_used]
            raw_used += 1
            # numeric data of the right size: a read-only view of the bytes (numpy refuses negative
            # dims and short buffers, except that it fills in a -1 from the buffer, so -1 is refused
            # first; the exact fit is checked here); anything else, BYTES included, goes through
            # decode_raw, which words the errors
            view: np.ndarray | None
            try:
                view = np.ndarray(shape, np_dtype, content) if itemsize and -1 not in shape else None
            except (TypeError, ValueError):
                view = None
            if view is not None and view.nbytes == len(content):
                data = view
            else:
                data = decode_raw(name, dtype, tuple(shape), content, model, request_prefix(request.id))
        else:
            raise InvalidInput(
                f"unable to find data for input tensor '{name}' for model '{model}' in request."
            )
        inputs[name] = new_tensor(Tensor, (name, dtype, data))
    if raw_used != n_raw:
        raise InvalidInput(
            f"{request_prefix(request.id)}expected {raw_used} raw_input_contents (one per input) "
            f"for model '{model}', got {len(raw)}"
        )
    return inputs


def _bad_datatype(name: str, tensor: str, model: str) -> InvalidInput:
    return InvalidInput(f"invalid datatype '{name}' for input '{tensor}' for model '{model}'")


def _requested_outputs(outputs: Any, model: str) -> tuple[str, ...] | None:
    if not outputs:
        return None
    names: dict[str, None] = {}
    for out in outputs:
        if out.parameters and any(k in out.parameters for k in _SHM_KEYS):
            raise Unsupported(f"output '{out.name}' for model '{model}' uses client shared memory, {_NO_SHM}")
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
    outputs, raw = msg.outputs, msg.raw_output_contents
    for tensor in response.outputs:
        outputs.add(name=tensor.name, datatype=_API_NAMES[tensor.datatype], shape=tensor.data.shape)
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

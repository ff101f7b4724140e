"""OutputAdapter: turns what a Python model produced into domain responses (output filtering, datatypes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from server.backends.python.pb_response import InferenceResponse
from server.backends.python.pb_tensor import Tensor as PbTensor
from server.errors import BackendError, HangarError
from server.repository.model_config import ModelConfig
from server.scheduling.response_channel import error_response
from server.types import DataType, InferRequest, InferResponse, ParamValue, Tensor, new_tensor


class OutputAdapter:
    """Per model: which outputs a request gets, and their conversion to domain tensors."""

    def __init__(self, config: ModelConfig) -> None:
        self._model = config.name
        self._configs = {t.name: t for t in config.outputs}
        # name -> (datatype, numpy dtype) of the configured numeric outputs: an array of exactly that dtype
        # needs no conversion (BYTES is excluded: its object arrays still need checking)
        self._native = {
            t.name: (t.data_type, t.data_type.numpy_dtype)
            for t in config.outputs
            if t.data_type is not DataType.BYTES
        }
        self.all_outputs: tuple[str, ...] = tuple(self._configs)

    def requested(self, request: InferRequest) -> tuple[str, ...]:
        """The outputs the model should produce: those asked for, else every output in the config."""
        return self.all_outputs if request.requested_outputs is None else request.requested_outputs

    def to_domain(self, request: InferRequest, response: Any, final: bool = True) -> InferResponse:
        """One model response -> domain response; a malformed one fails just this request."""
        try:
            return self._convert(request, response, final)
        except HangarError as e:
            return error_response(request, e)

    def _convert(self, request: InferRequest, response: Any, final: bool) -> InferResponse:
        if response.__class__ is not InferenceResponse and not isinstance(response, InferenceResponse):
            raise BackendError(
                f"model '{self._model}' answered request '{request.id}' with {type(response).__name__}, "
                "expected pb_utils.InferenceResponse"
            )
        error = response.error()
        if error is not None:
            resp = InferResponse(request.model_name, request.model_version, request.id, final=True)
            resp.error = error.to_domain()
            return resp
        wanted = request.requested_outputs
        configs = self._configs
        outputs = []
        for t in response.output_tensors():
            if t.__class__ is not PbTensor and not isinstance(t, PbTensor):
                raise BackendError(f"model '{self._model}' returned {type(t).__name__} as an output tensor")
            name = t.name()
            if (name not in wanted) if wanted is not None else (configs and name not in configs):
                continue  # like Triton: outputs nobody asked for are dropped
            outputs.append(self._tensor(name, t.as_numpy()))
        params = response.parameter_dict()
        return InferResponse(
            request.model_name,
            request.model_version,
            request.id,
            outputs,
            _parameters(params, self._model) if params else {},
            final,
        )

    def _tensor(self, name: str, array: np.ndarray) -> Tensor:
        native = self._native.get(name)
        if native is not None and array.dtype is native[1]:  # the common case, without a type search
            return new_tensor(Tensor, (name, native[0], array))
        expected = self._configs.get(name)
        if array.dtype.kind in "OSU":
            array, dtype = as_bytes_array(array), DataType.BYTES
        else:
            try:
                dtype = DataType.from_numpy(array.dtype)
            except HangarError:
                raise BackendError(
                    f"output '{name}' of model '{self._model}' has numpy dtype {array.dtype}, "
                    "which no tensor datatype carries"
                ) from None
        if expected is not None and expected.data_type is not dtype:
            if expected.data_type is DataType.BF16 and dtype is DataType.UINT16:
                dtype = DataType.BF16  # bfloat16 travels as its uint16 bit pattern
            else:
                raise BackendError(
                    f"output '{name}' of model '{self._model}' has datatype {dtype.value}, but the model "
                    f"config declares {expected.data_type.value}"
                )
        return Tensor(name, dtype, array)


def as_bytes_array(array: np.ndarray) -> np.ndarray:
    """An object array of `bytes`; str elements are UTF-8 encoded, other objects go through str()."""
    if array.dtype.kind == "S":
        return array.astype(object)
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, x in enumerate(array.reshape(-1)):
        flat[i] = x if isinstance(x, bytes) else (x if isinstance(x, str) else str(x)).encode("utf-8")
    return out


def _parameters(params: dict[str, Any], model: str) -> dict[str, ParamValue]:
    for key, value in params.items():
        if not isinstance(value, bool | int | float | str):
            raise BackendError(
                f"response parameter '{key}' of model '{model}' is a {type(value).__name__}; "
                "parameters must be bool, int, float or str"
            )
    return params

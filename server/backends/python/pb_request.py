"""pb_utils.InferenceRequest: the requests `execute` receives (and the BLS constructor, unsupported)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from server.backends.python.pb_response import TritonModelException
from server.backends.python.pb_sender import BatchSenders, ResponseSender
from server.backends.python.pb_tensor import Tensor
from server.types import InferRequest

BLS_UNSUPPORTED = (
    "BLS (pb_utils.InferenceRequest(...).exec / async_exec) is not supported by Hangar's Python backend; "
    "call the other model from the client, or compose the models inside one model.py"
)
TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2


class InferenceRequest:
    """One request inside `execute(requests)`: inputs, ids, parameters, cancellation, response sender."""

    def __init__(
        self,
        request_id: str = "",
        correlation_id: int | str = 0,
        inputs: Sequence[Tensor] | None = None,
        requested_output_names: Sequence[str] | None = None,
        model_name: str = "",
        model_version: int = -1,
        flags: int = 0,
        timeout: int = 0,
        preferred_memory: Any = None,
        trace: Any = None,
        parameters: Mapping[str, Any] | str | None = None,
    ) -> None:
        # Only BLS code constructs requests; `wrap` makes the ones `execute` receives.
        self._id = request_id
        self._correlation_id = correlation_id
        self._inputs: list[Tensor] | None = list(inputs or ())
        self._output_names: Sequence[str] = tuple(requested_output_names or ())
        self._model_name = model_name
        self._model_version = model_version
        self._flags = flags
        self._timeout = timeout
        self._parameters: str | None = (
            parameters if isinstance(parameters, str) else json.dumps(dict(parameters or {}))
        )
        self._request: InferRequest | None = None
        self._sender: ResponseSender | None = None
        self._senders: BatchSenders | None = None
        self._index = 0

    @classmethod
    def wrap(
        cls,
        request: InferRequest,
        sender: ResponseSender | BatchSenders,
        output_names: Sequence[str],
        index: int = 0,
    ) -> InferenceRequest:
        """The request `execute` receives; with BatchSenders, its sender is built on first use (`index`)."""
        self = cls.__new__(cls)
        self._request = request
        if isinstance(sender, ResponseSender):
            self._sender, self._senders = sender, None
        else:
            self._sender, self._senders = None, sender
        self._index = index
        self._id = request.id
        self._inputs = None  # built on first use
        self._output_names = output_names  # copied when asked for
        self._model_name = request.model_name
        version = request.model_version
        self._model_version = int(version) if version and version.isdigit() else -1
        self._parameters = None  # built on first use
        return self

    def inputs(self) -> list[Tensor]:
        if self._inputs is None:
            assert self._request is not None
            self._inputs = [Tensor.wrap(name, t.data) for name, t in self._request.inputs.items()]
        return self._inputs

    def input(self, name: str) -> Tensor | None:
        """The input called `name`, or None (what pb_utils.get_input_tensor_by_name returns)."""
        if self._request is not None:
            t = self._request.inputs.get(name)
            return None if t is None else Tensor.wrap(name, t.data)
        return next((t for t in self.inputs() if t.name() == name), None)

    def request_id(self) -> str:
        return self._id

    def correlation_id(self) -> int | str:
        if self._request is None:
            return self._correlation_id
        value = self._request.parameters.get("sequence_id", 0)
        return value if isinstance(value, str) else int(value)

    def flags(self) -> int:
        if self._request is None:
            return self._flags
        p = self._request.parameters
        start = TRITONSERVER_REQUEST_FLAG_SEQUENCE_START if p.get("sequence_start") is True else 0
        return start | (TRITONSERVER_REQUEST_FLAG_SEQUENCE_END if p.get("sequence_end") is True else 0)

    def requested_output_names(self) -> list[str]:
        return list(self._output_names)

    def model_name(self) -> str:
        return self._model_name

    def model_version(self) -> int:
        return self._model_version

    def timeout(self) -> int:
        if self._request is None:
            return self._timeout
        value = self._request.parameters.get("timeout", 0)
        return value if isinstance(value, int) else 0

    def parameters(self) -> str:
        """The request parameters as a JSON object string."""
        if self._parameters is None:
            assert self._request is not None
            self._parameters = json.dumps(dict(self._request.parameters))
        return self._parameters

    def get_response_sender(self) -> ResponseSender:
        if self._sender is None and self._senders is not None:
            self._sender = self._senders.get(self._index)
        if self._sender is None:
            raise TritonModelException("a request built by the model has no response sender")
        return self._sender

    def is_cancelled(self) -> bool:
        return self._request is not None and self._request.cancel.is_cancelled()

    def exec(self, decoupled: bool = False) -> Any:
        raise TritonModelException(BLS_UNSUPPORTED)

    async def async_exec(self, decoupled: bool = False) -> Any:
        raise TritonModelException(BLS_UNSUPPORTED)

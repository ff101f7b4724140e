"""pb_utils.InferenceResponse, TritonError and TritonModelException, as model code builds and raises them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from server.errors import BackendError, HangarError, StatusKind

if TYPE_CHECKING:
    from server.backends.python.pb_tensor import Tensor


class TritonModelException(Exception):
    """Raised by pb_utils calls that the model uses wrongly (and by models, by convention)."""


class TritonError:
    """An error a model attaches to a response; `code` is one of the class constants."""

    UNKNOWN: ClassVar[int] = 0
    INTERNAL: ClassVar[int] = 1
    NOT_FOUND: ClassVar[int] = 2
    INVALID_ARG: ClassVar[int] = 3
    UNAVAILABLE: ClassVar[int] = 4
    UNSUPPORTED: ClassVar[int] = 5
    ALREADY_EXISTS: ClassVar[int] = 6
    CANCELLED: ClassVar[int] = 7

    _KINDS: ClassVar[dict[int, StatusKind]] = {
        0: StatusKind.UNKNOWN,
        1: StatusKind.INTERNAL,
        2: StatusKind.NOT_FOUND,
        3: StatusKind.INVALID_ARG,
        4: StatusKind.UNAVAILABLE,
        5: StatusKind.UNSUPPORTED,
        6: StatusKind.ALREADY_EXISTS,
        7: StatusKind.CANCELLED,
    }

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        self._message = str(message)
        self._code = code if code in self._KINDS else self.INTERNAL

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code

    def to_domain(self) -> HangarError:
        return BackendError(self._message, kind=self._KINDS[self._code])

    def __repr__(self) -> str:
        return f"TritonError({self._message!r}, code={self._code})"


class InferenceResponse:
    """What `execute` returns (or a response sender sends) for one request: tensors or an error."""

    __slots__ = ("_error", "_parameters", "_tensors")

    def __init__(
        self,
        output_tensors: Sequence[Tensor] | None = None,
        error: TritonError | str | None = None,
        parameters: Mapping[str, Any] | str | None = None,
    ) -> None:
        self._tensors = list(output_tensors) if output_tensors else []
        self._error = TritonError(error) if isinstance(error, str) else error
        if isinstance(parameters, str):
            parameters = json.loads(parameters) if parameters else {}
        self._parameters: dict[str, Any] = dict(parameters) if parameters else {}

    def output_tensors(self) -> list[Tensor]:
        return self._tensors

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def parameters(self) -> str:
        return json.dumps(self._parameters)

    def parameter_dict(self) -> dict[str, Any]:
        """Hangar's addition: the response parameters as a dict."""
        return self._parameters

"""Typed reads of one LLM request's input tensors: one prompt per request, each value checked and named."""

from __future__ import annotations

import numpy as np

from server.errors import InvalidInput, Unsupported
from server.types import InferRequest, Tensor


class RequestInputs:
    """Reads scalars, strings and id lists from a request whose tensors carry a leading batch dim of 1.

    Tensors without the batch dim (a model served with max_batch_size 0) are read the same way.
    """

    def __init__(self, request: InferRequest) -> None:
        self._inputs = request.inputs

    def has(self, name: str) -> bool:
        return name in self._inputs

    def _row(self, name: str, item_ndim: int = 1) -> np.ndarray | None:
        """The single batch item of `name` (an array of `item_ndim` dims), or None when absent."""
        tensor = self._inputs.get(name)
        if tensor is None:
            return None
        data = tensor.data
        if data.ndim <= item_ndim:
            return np.asarray(data)
        if data.ndim > item_ndim + 1:
            raise InvalidInput(f"input '{name}' has shape {list(tensor.shape)}: too many dims")
        if data.shape[0] != 1:
            raise Unsupported(
                f"input '{name}' has batch size {data.shape[0]}; LLM models take one prompt per request "
                f"(leading dim 1): send one request per prompt"
            )
        return np.asarray(data[0])

    def _one(self, name: str) -> tuple[Tensor, object] | None:
        row = self._row(name)
        if row is None:
            return None
        if row.size != 1:
            shape = list(self._inputs[name].shape)
            raise InvalidInput(f"input '{name}' must hold one value, got shape {shape}")
        return self._inputs[name], row.reshape(-1)[0]

    def _first(self, names: tuple[str, ...]) -> tuple[str, Tensor, object] | None:
        """The first of `names` the request carries (aliases such as min_tokens/min_length)."""
        for name in names:
            got = self._one(name)
            if got is not None:
                return name, got[0], got[1]
        return None

    def int_value(self, *names: str) -> int | None:
        """The first present of `names` as an int (aliases such as min_tokens/min_length)."""
        got = self._first(names)
        if got is None:
            return None
        name, tensor, value = got
        if isinstance(value, (bytes, str)) or tensor.data.dtype == np.bool_:
            raise InvalidInput(f"input '{name}' must be an integer, got {tensor.datatype.value}")
        number = float(value)  # type: ignore[arg-type]
        if not np.isfinite(number) or number != int(number):
            raise InvalidInput(f"input '{name}' must be an integer, got {value!r}")
        return int(value)  # type: ignore[call-overload]

    def float_value(self, *names: str) -> float | None:
        got = self._first(names)
        if got is None:
            return None
        name, tensor, value = got
        if isinstance(value, (bytes, str)):
            raise InvalidInput(f"input '{name}' must be a number, got {tensor.datatype.value}")
        number = float(value)  # type: ignore[arg-type]
        if not np.isfinite(number):
            raise InvalidInput(f"input '{name}' must be a finite number, got {number}")
        return number

    def bool_value(self, *names: str) -> bool | None:
        got = self._first(names)
        if got is None:
            return None
        name, tensor, value = got
        if isinstance(value, (bytes, str)):
            raise InvalidInput(f"input '{name}' must be a BOOL, got {tensor.datatype.value}")
        return bool(value)

    def string(self, name: str) -> str | None:
        """A single UTF-8 string input (text_input)."""
        got = self._one(name)
        if got is None:
            return None
        return _decode(name, got[1])

    def strings(self, name: str) -> list[str]:
        """A list-of-strings input (stop_words, bad_words); absent means empty."""
        row = self._row(name)
        if row is None:
            return []
        return [_decode(name, v) for v in row.reshape(-1)]

    def int_array(self, name: str, item_ndim: int = 1) -> np.ndarray | None:
        """An integer tensor's single batch item (input_ids: 1-D; *_words_list: 2-D [2, N])."""
        row = self._row(name, item_ndim)
        if row is None:
            return None
        if row.dtype.kind not in "iu":
            raise InvalidInput(f"input '{name}' must hold integers, got {self._inputs[name].datatype.value}")
        return row.astype(np.int64, copy=False)


def _decode(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, (bytes, bytearray, np.bytes_)):
        raise InvalidInput(f"input '{name}' must be BYTES (strings), got {type(value).__name__}")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"input '{name}' is not valid UTF-8 ({e})") from None

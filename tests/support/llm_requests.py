"""Domain InferRequests for LLM models, shaped as tritonclient sends them (leading batch dim 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from server.types import DataType, InferRequest, InferResponse, Tensor

_I32 = ("max_tokens", "request_output_len", "input_lengths", "top_k", "runtime_top_k", "end_id", "pad_id",
        "min_tokens", "min_length", "beam_width", "num_return_sequences")  # fmt: skip
_U64 = ("seed", "random_seed")
_SCALAR_TYPES: dict[str, DataType] = {
    **dict.fromkeys(_I32, DataType.INT32),
    **dict.fromkeys(_U64, DataType.UINT64),
}


def _tensor(name: str, value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor.from_numpy(name, value)
    if isinstance(value, str):
        return Tensor(name, DataType.BYTES, np.array([[value.encode()]], dtype=object))
    if isinstance(value, bool):
        return Tensor(name, DataType.BOOL, np.array([[value]], dtype=bool))
    if isinstance(value, (list, tuple)) and name == "input_ids":
        return Tensor(name, DataType.INT32, np.array([value], dtype=np.int32))
    if isinstance(value, (list, tuple)):
        return Tensor(name, DataType.BYTES, np.array([[v.encode() for v in value]], dtype=object))
    dtype = _SCALAR_TYPES.get(name, DataType.FP32 if isinstance(value, float) else DataType.INT32)
    return Tensor(name, dtype, np.array([[value]], dtype=dtype.numpy_dtype))


def llm_request(
    request_id: str = "r1", outputs: Sequence[str] | None = None, model: str = "llm", **inputs: Any
) -> InferRequest:
    """`llm_request(text_input="hi", max_tokens=8, stream=True)`; arrays and Tensors pass through."""
    return InferRequest(
        model_name=model,
        model_version="1",
        id=request_id,
        inputs={name: _tensor(name, value) for name, value in inputs.items()},
        requested_outputs=tuple(outputs) if outputs is not None else None,
    )


def packed_words(words: Sequence[Sequence[int]]) -> np.ndarray:
    """TensorRT-LLM's INT32 [1, 2, N] word-list form."""
    flat = [t for w in words for t in w]
    offsets = np.cumsum([len(w) for w in words]).tolist()
    width = max(len(flat), 1)
    row0 = flat + [0] * (width - len(flat))
    row1 = offsets + [-1] * (width - len(offsets))
    return np.array([[row0, row1]], dtype=np.int32)


def text_of(response: InferResponse) -> str:
    out = next(t for t in response.outputs if t.name == "text_output")
    return bytes(out.data.reshape(-1)[0]).decode()


def output(response: InferResponse, name: str) -> np.ndarray | None:
    return next((t.data for t in response.outputs if t.name == name), None)

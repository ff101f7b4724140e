"""InferResponse construction for LLM requests: the requested output tensors, batch dim 1, one beam."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from server.backends.llm.deltas import FinishReason
from server.types import DataType, InferRequest, InferResponse, Tensor


@dataclass(frozen=True)
class ResponseContent:
    """What one response reports: a streamed delta, or the whole output of a non-streamed request."""

    text: str = ""
    token_ids: Sequence[int] = ()
    logprobs: Sequence[float] = ()
    cum_logprob: float = 0.0
    """Sum of the log-probs of every token generated so far."""
    num_input_tokens: int = 0
    num_output_tokens: int = 0
    """Generated tokens this response reports (a delta's count when streaming)."""
    finish_reason: FinishReason | None = None


def _text(c: ResponseContent) -> Tensor:
    return Tensor("text_output", DataType.BYTES, np.array([[c.text.encode("utf-8")]], dtype=object))


def _finish(c: ResponseContent) -> Tensor:
    reason = c.finish_reason.value if c.finish_reason else ""
    return Tensor("finish_reason", DataType.BYTES, np.array([[reason.encode()]], dtype=object))


def _ids(c: ResponseContent) -> Tensor:
    return Tensor("output_ids", DataType.INT32, np.asarray(c.token_ids, dtype=np.int32).reshape(1, 1, -1))


def _int(name: str, value: int) -> Tensor:
    return Tensor(name, DataType.INT32, np.array([[value]], dtype=np.int32))


def _logprobs(c: ResponseContent) -> Tensor:
    data = np.asarray(c.logprobs, dtype=np.float32).reshape(1, 1, -1)
    return Tensor("output_log_probs", DataType.FP32, data)


_BUILDERS: dict[str, Callable[[ResponseContent], Tensor]] = {
    "text_output": _text,
    "finish_reason": _finish,
    "output_ids": _ids,
    "sequence_length": lambda c: _int("sequence_length", len(c.token_ids)),
    "cum_log_probs": lambda c: Tensor(
        "cum_log_probs", DataType.FP32, np.array([[c.cum_logprob]], np.float32)
    ),
    "output_log_probs": _logprobs,
    "num_input_tokens": lambda c: _int("num_input_tokens", c.num_input_tokens),
    "num_output_tokens": lambda c: _int("num_output_tokens", c.num_output_tokens),
    "batch_index": lambda c: _int("batch_index", 0),
    "sequence_index": lambda c: _int("sequence_index", 0),
}

_FINAL_ONLY = frozenset({"finish_reason"})


class ResponseBuilder:
    """Builds each response of one request with the outputs it asked for."""

    def __init__(self, request: InferRequest, outputs: Sequence[str]) -> None:
        self._request = request
        unknown = [n for n in outputs if n not in _BUILDERS]
        assert not unknown, f"translation admits only known outputs, got {unknown}"
        self._outputs = tuple(outputs)

    def _response(self, outputs: list[Tensor], final: bool, error: Exception | None = None) -> InferResponse:
        r = self._request
        return InferResponse(r.model_name, r.model_version, r.id, outputs=outputs, final=final, error=error)

    def build(self, content: ResponseContent, final: bool) -> InferResponse:
        """A data response; `finish_reason` rides only on the final one."""
        names = self._outputs if final else [n for n in self._outputs if n not in _FINAL_ONLY]
        return self._response([_BUILDERS[n](content) for n in names], final)

    def failure(self, error: Exception) -> InferResponse:
        return self._response([], True, error)


def empty_final(request: InferRequest) -> InferResponse:
    """A flags-only final response (sent to clients that opt into empty finals)."""
    return InferResponse(request.model_name, request.model_version, request.id, outputs=[], final=True)

"""The two LLM tensor contracts (PROTOCOL.md 8.1 text, 8.2 token) with TensorRT-LLM's names and types."""

from __future__ import annotations

import enum

from server.errors import InvalidInput
from server.repository.model_config import TensorConfig
from server.types import DataType, InferRequest


class Contract(enum.Enum):
    """Which contract a request speaks; picked per request from the inputs it sends."""

    TEXT = "text"
    """Ensemble style: `text_input` + `max_tokens` -> `text_output` deltas."""
    TOKEN = "token"
    """Core `tensorrt_llm` style: `input_ids` + `request_output_len` -> `output_ids`, `sequence_length`."""


def _spec(name: str, dtype: DataType, *dims: int) -> TensorConfig:
    # Every contract input is optional in the config: both contracts live on one model, and
    # translation checks per request that the inputs its contract needs are present.
    return TensorConfig(name=name, data_type=dtype, dims=tuple(dims), optional=True)


def _out(name: str, dtype: DataType, *dims: int) -> TensorConfig:
    return TensorConfig(name=name, data_type=dtype, dims=tuple(dims))


_I32, _U64, _F32, _BOOL, _STR = DataType.INT32, DataType.UINT64, DataType.FP32, DataType.BOOL, DataType.BYTES

SHARED_INPUTS: tuple[TensorConfig, ...] = (
    _spec("end_id", _I32, 1),
    _spec("pad_id", _I32, 1),
    _spec("temperature", _F32, 1),
    _spec("min_tokens", _I32, 1),
    _spec("min_length", _I32, 1),  # the name up to TensorRT-LLM v0.18; genai-perf still sends it
    _spec("seed", _U64, 1),
    _spec("random_seed", _U64, 1),  # likewise the old name of `seed`
    _spec("beam_width", _I32, 1),
    _spec("num_return_sequences", _I32, 1),
    _spec("repetition_penalty", _F32, 1),
    _spec("presence_penalty", _F32, 1),
    _spec("frequency_penalty", _F32, 1),
    _spec("exclude_input_in_output", _BOOL, 1),
    _spec("return_log_probs", _BOOL, 1),
    _spec("return_context_logits", _BOOL, 1),
    _spec("return_generation_logits", _BOOL, 1),
    _spec("return_perf_metrics", _BOOL, 1),
    _spec("return_num_input_tokens", _BOOL, 1),
    _spec("return_num_output_tokens", _BOOL, 1),
)

TEXT_INPUTS: tuple[TensorConfig, ...] = (
    _spec("text_input", _STR, 1),
    _spec("max_tokens", _I32, 1),
    _spec("stream", _BOOL, 1),
    _spec("top_k", _I32, 1),
    _spec("top_p", _F32, 1),
    _spec("length_penalty", _F32, 1),
    _spec("bad_words", _STR, -1),
    _spec("stop_words", _STR, -1),
)

TOKEN_INPUTS: tuple[TensorConfig, ...] = (
    _spec("input_ids", _I32, -1),
    _spec("input_lengths", _I32, 1),
    _spec("request_output_len", _I32, 1),
    _spec("streaming", _BOOL, 1),
    _spec("stop", _BOOL, 1),
    _spec("runtime_top_k", _I32, 1),
    _spec("runtime_top_p", _F32, 1),
    _spec("len_penalty", _F32, 1),
    _spec("bad_words_list", _I32, 2, -1),
    _spec("stop_words_list", _I32, 2, -1),
)

OUTPUTS: tuple[TensorConfig, ...] = (
    _out("text_output", _STR, -1),
    _out("finish_reason", _STR, -1),
    _out("output_ids", _I32, -1, -1),
    _out("sequence_length", _I32, -1),
    _out("cum_log_probs", _F32, -1),
    _out("output_log_probs", _F32, -1, -1),
    _out("num_input_tokens", _I32, 1),
    _out("num_output_tokens", _I32, 1),
    _out("batch_index", _I32, 1),
    _out("sequence_index", _I32, 1),
)
OUTPUT_NAMES: frozenset[str] = frozenset(t.name for t in OUTPUTS)

ALL_INPUTS: tuple[TensorConfig, ...] = TEXT_INPUTS + TOKEN_INPUTS + SHARED_INPUTS

DEFAULT_OUTPUTS: dict[Contract, tuple[str, ...]] = {
    Contract.TEXT: ("text_output", "finish_reason"),
    Contract.TOKEN: ("output_ids", "sequence_length"),
}
"""What a request gets when it names no outputs; log-probs and token counts join when asked for."""


def detect_contract(request: InferRequest) -> Contract:
    """The contract a request speaks, from its prompt input.

    Raises:
        InvalidInput: neither or both of `text_input` and `input_ids` were sent.
    """
    has_text = "text_input" in request.inputs
    has_ids = "input_ids" in request.inputs
    if has_text and has_ids:
        raise InvalidInput(
            "send either 'text_input' (text contract) or 'input_ids' (token contract), not both"
        )
    if has_text:
        return Contract.TEXT
    if has_ids:
        return Contract.TOKEN
    sent = ", ".join(sorted(request.inputs)) or "none"
    raise InvalidInput(
        f"an LLM request needs 'text_input' (text contract) or 'input_ids' (token contract); "
        f"inputs sent: {sent}"
    )

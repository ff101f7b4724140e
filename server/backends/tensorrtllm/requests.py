"""GenerationRequest -> executor Request, and executor Response -> TokenDelta."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from server.backends.llm.deltas import FinishReason, TokenDelta
from server.backends.llm.translation import GenerationRequest

_FINISH = {
    "END_ID": FinishReason.STOP,
    "STOP_WORDS": FinishReason.STOP,
    "LENGTH": FinishReason.LENGTH,
    "CANCELLED": FinishReason.CANCELLED,
    "TIMED_OUT": FinishReason.CANCELLED,
}


def _sampling_config(trt: ModuleType, gen: GenerationRequest) -> Any:
    s = gen.sampling
    options: dict[str, Any] = {"temperature": s.temperature}
    if s.top_k:
        options["top_k"] = s.top_k
    if s.top_p < 1.0 or not s.top_k:
        options["top_p"] = s.top_p
    if s.seed is not None:
        options["seed"] = s.seed
    if s.min_tokens:
        options["min_tokens"] = s.min_tokens
    if s.repetition_penalty != 1.0:
        options["repetition_penalty"] = s.repetition_penalty
    if s.presence_penalty:
        options["presence_penalty"] = s.presence_penalty
    if s.frequency_penalty:
        options["frequency_penalty"] = s.frequency_penalty
    return trt.SamplingConfig(1, **options)


def executor_streams(gen: GenerationRequest) -> bool:
    """Stream from the executor when the client streams, and when stop strings must be checked as text
    arrives (so a stop string ends generation early rather than after max_tokens)."""
    return gen.streaming or bool(gen.sampling.stop_strings)


def to_executor_request(trt: ModuleType, gen: GenerationRequest, default_end_id: int | None) -> Any:
    """The executor Request for `gen`. The prompt is never echoed (exclude_input_from_output): the
    serving layer adds it to non-streamed outputs itself, identically for both backends."""
    s = gen.sampling
    end_id = s.end_id if s.end_id is not None else default_end_id
    stop_words = [[t] for t in s.stop_token_ids] + [list(seq) for seq in gen.stop_sequences]
    return trt.Request(
        list(gen.prompt_token_ids),
        s.max_tokens,
        streaming=executor_streams(gen),
        sampling_config=_sampling_config(trt, gen),
        output_config=trt.OutputConfig(return_log_probs=s.logprobs, exclude_input_from_output=True),
        end_id=None if s.ignore_eos else end_id,
        pad_id=end_id,
        stop_words=stop_words or None,
        bad_words=[list(w) for w in s.bad_words] or None,
    )


def to_delta(response: Any) -> TokenDelta:
    """One executor Response (beam 0) as a delta; runs on the poller thread."""
    if response.has_error():
        return TokenDelta.failure(str(response.error_msg))
    result = response.result
    beams = result.output_token_ids
    ids = tuple(int(t) for t in beams[0]) if beams else ()
    logprobs = None
    if result.log_probs:
        # Only this response's tokens: the last len(ids) entries of beam 0.
        logprobs = tuple(float(x) for x in list(result.log_probs[0])[-len(ids) :]) if ids else ()
    if not result.is_final:
        return TokenDelta(ids, logprobs)
    reasons = list(result.finish_reasons or ())
    name = getattr(reasons[0], "name", str(reasons[0])) if reasons else "END_ID"
    return TokenDelta(ids, logprobs, finished=True, finish_reason=_FINISH.get(name, FinishReason.STOP))

"""GenerationSession: engine deltas -> streamed or whole responses, with stops, counts and log-probs."""

from __future__ import annotations

import numpy as np
import pytest

from server.backends.llm.deltas import FinishReason, TokenDelta
from server.backends.llm.responses import ResponseBuilder
from server.backends.llm.session import GenerationSession
from server.backends.llm.tokenizer import TextTokenizer
from server.backends.llm.translation import ModelLimits, translate
from server.errors import BackendError
from server.types import InferResponse
from tests.support.llm_requests import llm_request, output, packed_words, text_of

LIMITS = ModelLimits(vocab_size=300, max_model_len=256, decoupled=True)
ANSWER = "Streaming 日本 🙂 text, with spaces."


def _run(
    tok: TextTokenizer | None, gen_ids: list[int], chunk: int = 1, logprobs: bool = False, **inputs: object
) -> tuple[GenerationSession, list[InferResponse]]:
    req = llm_request(**inputs)  # type: ignore[arg-type]
    gen = translate(req, tok, LIMITS)
    session = GenerationSession(gen, tok, ResponseBuilder(req, gen.outputs))
    responses = []
    for i in range(0, len(gen_ids), chunk):
        part = tuple(gen_ids[i : i + chunk])
        last = i + chunk >= len(gen_ids)
        lps = tuple(-0.5 for _ in part) if logprobs else None
        delta = TokenDelta(part, lps, finished=last, finish_reason=FinishReason.LENGTH if last else None)
        r = session.on_delta(delta)
        if r is not None:
            responses.append(r)
        if session.finished:
            break
    return session, responses


def test_streamed_deltas_concatenate_to_the_non_streamed_text(tokenizer: TextTokenizer) -> None:
    ids = tokenizer.encode(ANSWER, add_special_tokens=False)
    _, streamed = _run(tokenizer, ids, text_input="Q: say it", max_tokens=64, stream=True)
    _, whole = _run(tokenizer, ids, text_input="Q: say it", max_tokens=64, exclude_input_in_output=True)
    assert len(whole) == 1 and whole[0].final
    assert [r.final for r in streamed] == [False] * (len(streamed) - 1) + [True]
    assert "".join(text_of(r) for r in streamed) == text_of(whole[0])
    assert text_of(whole[0]).strip() == ANSWER.strip()
    assert all("\ufffd" not in text_of(r) for r in streamed)
    assert output(streamed[-1], "finish_reason")[0, 0] == b"length"
    assert output(streamed[0], "finish_reason") is None


def test_non_streamed_text_includes_the_prompt_unless_excluded(bpe_tokenizer: TextTokenizer) -> None:
    ids = bpe_tokenizer.encode(" done", add_special_tokens=False)
    _, [r] = _run(bpe_tokenizer, ids, text_input="Say:", max_tokens=8)
    assert text_of(r) == "Say: done"


def test_stop_string_ends_the_request_and_is_not_emitted(bpe_tokenizer: TextTokenizer) -> None:
    ids = bpe_tokenizer.encode("The answer is 4. The end of it", add_special_tokens=False)
    session, streamed = _run(
        bpe_tokenizer, ids, text_input="q", max_tokens=64, stream=True, stop_words=["The end"]
    )
    assert session.finished and session.stop_engine
    assert "".join(text_of(r) for r in streamed) == "The answer is 4. "
    assert output(streamed[-1], "finish_reason")[0, 0] == b"stop"


def test_token_contract_streams_new_ids_and_lengths() -> None:
    _, streamed = _run(
        None, [5, 6, 7, 8, 9], chunk=2, input_ids=[1, 2, 3], request_output_len=5, streaming=True
    )
    assert [output(r, "output_ids").tolist() for r in streamed] == [[[[5, 6]]], [[[7, 8]]], [[[9]]]]
    assert [output(r, "sequence_length").tolist() for r in streamed] == [[[2]], [[2]], [[1]]]
    assert output(streamed[0], "output_ids").dtype == np.int32


def test_token_contract_non_streamed_includes_the_prompt() -> None:
    _, [r] = _run(None, [5, 6], input_ids=[1, 2, 3], request_output_len=2)
    assert output(r, "output_ids").tolist() == [[[1, 2, 3, 5, 6]]]
    assert output(r, "sequence_length").tolist() == [[5]]
    _, [r] = _run(None, [5, 6], input_ids=[1, 2, 3], request_output_len=2, exclude_input_in_output=True)
    assert output(r, "output_ids").tolist() == [[[5, 6]]]


def test_stop_sequence_on_ids_keeps_the_sequence_and_stops() -> None:
    session, [r] = _run(
        None,
        [5, 8, 9, 10, 11],
        input_ids=[1],
        request_output_len=8,
        exclude_input_in_output=True,
        stop_words_list=packed_words([[8, 9]]),
    )
    assert session.stop_engine
    assert output(r, "output_ids").tolist() == [[[5, 8, 9]]]


def test_log_probs_and_token_counts() -> None:
    _, streamed = _run(
        None,
        [5, 6, 7],
        logprobs=True,
        input_ids=[1, 2],
        request_output_len=3,
        streaming=True,
        return_log_probs=True,
        return_num_input_tokens=True,
        return_num_output_tokens=True,
    )
    assert [output(r, "cum_log_probs").tolist() for r in streamed] == [[[-0.5]], [[-1.0]], [[-1.5]]]
    assert output(streamed[1], "output_log_probs").tolist() == [[[-0.5]]]
    assert sum(int(output(r, "num_output_tokens")[0, 0]) for r in streamed) == 3
    assert int(output(streamed[0], "num_input_tokens")[0, 0]) == 2


def test_text_held_back_mid_character_is_reported_with_its_tokens(bpe_tokenizer: TextTokenizer) -> None:
    ids = bpe_tokenizer.encode("🙂", add_special_tokens=False)
    _, streamed = _run(
        bpe_tokenizer,
        [*ids, *bpe_tokenizer.encode(" ok", add_special_tokens=False)],
        outputs=["text_output", "output_ids"],
        text_input="q",
        max_tokens=16,
        stream=True,
    )
    first = streamed[0]
    assert text_of(first) == "🙂"
    assert output(first, "output_ids").reshape(-1).tolist() == ids


def test_engine_error_fails_the_request(bpe_tokenizer: TextTokenizer) -> None:
    req = llm_request(text_input="q", max_tokens=4, stream=True)
    gen = translate(req, bpe_tokenizer, LIMITS)
    session = GenerationSession(gen, bpe_tokenizer, ResponseBuilder(req, gen.outputs))
    r = session.on_delta(TokenDelta.failure("CUDA error"))
    assert r is not None and r.final and isinstance(r.error, BackendError)
    assert "CUDA error" in str(r.error)


def test_cancelled_delta_ends_with_a_cancelled_final() -> None:
    req = llm_request(input_ids=[1], request_output_len=4, streaming=True)
    gen = translate(req, None, LIMITS)
    session = GenerationSession(gen, None, ResponseBuilder(req, gen.outputs))
    assert session.on_delta(TokenDelta((4,))) is not None
    r = session.on_delta(TokenDelta.cancelled())
    assert r is not None and r.final and r.error is None
    assert output(r, "output_ids").shape == (1, 1, 0)


@pytest.mark.parametrize("stream", [True, False])
def test_engine_finish_after_a_stop_is_not_needed_when_the_engine_finished_itself(
    bpe_tokenizer: TextTokenizer, stream: bool
) -> None:
    ids = bpe_tokenizer.encode("abc STOP", add_special_tokens=False)
    session, _ = _run(
        bpe_tokenizer, ids, chunk=len(ids), text_input="q", max_tokens=16, stream=stream, stop_words=["STOP"]
    )
    assert session.finished and not session.stop_engine


def test_the_end_token_is_left_out_of_the_outputs() -> None:
    req = llm_request(input_ids=[1], request_output_len=8, end_id=9, exclude_input_in_output=True,
                      return_log_probs=True, return_num_output_tokens=True)  # fmt: skip
    gen = translate(req, None, LIMITS)
    session = GenerationSession(gen, None, ResponseBuilder(req, gen.outputs))
    r = session.on_delta(TokenDelta((5, 9), (-0.1, -0.2), finished=True, finish_reason=FinishReason.STOP))
    assert r is not None
    assert output(r, "output_ids").tolist() == [[[5]]]
    assert output(r, "output_log_probs").tolist() == [[[pytest.approx(-0.1)]]]
    assert int(output(r, "num_output_tokens")[0, 0]) == 1

"""InferRequest -> GenerationRequest for both contracts, and the errors bad input gets."""

from __future__ import annotations

import numpy as np
import pytest

from server.backends.llm.contracts import Contract
from server.backends.llm.tokenizer import TextTokenizer
from server.backends.llm.translation import ModelLimits, stop_target, translate
from server.errors import InvalidInput, Unsupported
from server.types import DataType, Tensor
from tests.support.llm_requests import llm_request, packed_words

LIMITS = ModelLimits(vocab_size=300, max_model_len=128, decoupled=True)


def test_text_contract(bpe_tokenizer: TextTokenizer) -> None:
    req = llm_request(text_input="Hello world", max_tokens=8, stream=True, temperature=0.7, top_p=0.9, seed=3)
    gen = translate(req, bpe_tokenizer, LIMITS)
    assert gen.contract is Contract.TEXT
    assert gen.prompt_token_ids == tuple(bpe_tokenizer.encode("Hello world"))
    assert gen.prompt_text == "Hello world"
    assert gen.streaming
    s = gen.sampling
    assert (s.max_tokens, s.temperature, s.top_p, s.seed) == (8, pytest.approx(0.7), pytest.approx(0.9), 3)
    assert gen.outputs == ("text_output", "finish_reason")


def test_token_contract_honours_input_lengths() -> None:
    req = llm_request(input_ids=[5, 6, 7, 0, 0], input_lengths=3, request_output_len=4, streaming=True)
    gen = translate(req, None, LIMITS)
    assert gen.contract is Contract.TOKEN
    assert gen.prompt_token_ids == (5, 6, 7)
    assert gen.sampling.max_tokens == 4
    assert gen.streaming
    assert gen.outputs == ("output_ids", "sequence_length")


def test_greedy_when_neither_top_k_nor_top_p_is_set() -> None:
    """TensorRT-LLM semantics: temperature 1.0 without top-k/top-p decodes greedily."""
    gen = translate(llm_request(input_ids=[1, 2], request_output_len=2, temperature=1.0), None, LIMITS)
    assert gen.sampling.greedy
    gen = translate(
        llm_request(input_ids=[1, 2], request_output_len=2, runtime_top_k=5, runtime_top_p=0.0), None, LIMITS
    )
    assert (gen.sampling.top_k, gen.sampling.top_p, gen.sampling.greedy) == (5, 1.0, False)


@pytest.mark.parametrize(("old", "new"), [("min_length", "min_tokens"), ("random_seed", "seed")])
def test_old_names_are_accepted(old: str, new: str) -> None:
    gen = translate(llm_request(input_ids=[1], request_output_len=8, **{old: 4}), None, LIMITS)
    assert getattr(gen.sampling, new) == 4


def test_stop_and_bad_words_in_both_forms(bpe_tokenizer: TextTokenizer) -> None:
    req = llm_request(
        text_input="hi",
        max_tokens=8,
        stop_words=["</s>", "The end"],
        bad_words=["fox"],
        stop_words_list=packed_words([[7], [8, 9]]),
        bad_words_list=packed_words([[10, 11]]),
    )
    gen = translate(req, bpe_tokenizer, LIMITS)
    assert gen.sampling.stop_strings == ("</s>", "The end")
    assert gen.sampling.stop_token_ids == (7,)
    assert gen.stop_sequences == ((8, 9),)
    fox = tuple(bpe_tokenizer.encode("fox", add_special_tokens=False))
    assert gen.sampling.bad_words == ((10, 11), fox)


def test_requested_outputs_and_flags() -> None:
    gen = translate(
        llm_request(
            input_ids=[1], request_output_len=2, return_log_probs=True, return_num_output_tokens=True
        ),
        None,
        LIMITS,
    )
    assert gen.outputs == (
        "output_ids",
        "sequence_length",
        "cum_log_probs",
        "output_log_probs",
        "num_output_tokens",
    )
    assert gen.sampling.logprobs
    gen = translate(
        llm_request(outputs=["output_ids", "cum_log_probs"], input_ids=[1], request_output_len=2),
        None,
        LIMITS,
    )
    assert gen.outputs == ("output_ids", "cum_log_probs") and gen.sampling.logprobs


def test_exclude_input_default_comes_from_the_model() -> None:
    req = llm_request(input_ids=[1], request_output_len=2)
    assert not translate(req, None, LIMITS).exclude_input
    limits = ModelLimits(300, 128, True, exclude_input_in_output=True)
    assert translate(req, None, limits).exclude_input
    req = llm_request(input_ids=[1], request_output_len=2, exclude_input_in_output=False)
    assert not translate(req, None, limits).exclude_input


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"text_input": "", "max_tokens": 4}, "text_input is empty"),
        ({"text_input": "hi"}, "'max_tokens' is required"),
        ({"text_input": "hi", "max_tokens": 0}, "max_tokens must be > 0, got 0"),
        ({"text_input": "hi", "max_tokens": -3}, "got -3"),
        ({"text_input": "hi", "max_tokens": 10**9}, "max_tokens 1000000000"),
        ({"text_input": "hi", "max_tokens": 4, "temperature": -0.5}, "temperature must be >= 0, got -0.5"),
        ({"text_input": "hi", "max_tokens": 4, "top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"text_input": "hi", "max_tokens": 4, "top_p": -0.1}, "got -0.1"),
        ({"text_input": "hi", "max_tokens": 4, "top_k": -1}, "top_k must be >= 0, got -1"),
        ({"text_input": "hi", "max_tokens": 4, "end_id": 999}, "end_id 999"),
        ({"input_ids": [1, 300], "request_output_len": 4}, "input_ids[1] = 300"),
        ({"input_ids": [1, -2], "request_output_len": 4}, "input_ids[1] = -2"),
        ({"input_ids": [1, 2], "input_lengths": 5, "request_output_len": 4}, "input_lengths 5"),
        ({"input_ids": [1], "input_lengths": 0, "request_output_len": 4}, "input_ids is empty"),
        ({"input_ids": [1] * 128, "request_output_len": 4}, "max_model_len is 128"),
        ({"input_ids": [1] * 100, "request_output_len": 40}, "plus the prompt's 100 tokens"),
        ({"max_tokens": 4}, "needs 'text_input'"),
        ({"text_input": "hi", "input_ids": [1], "max_tokens": 4}, "not both"),
        ({"text_input": "hi", "max_tokens": 4, "min_tokens": 9}, "min_tokens must be in [0, max_tokens=4]"),
        ({"text_input": "hi", "max_tokens": np.array([[4.5]], np.float32)}, "must be an integer"),
        (
            {"text_input": "hi", "max_tokens": 4, "stop_words_list": np.array([[[1, 2], [3, -1]]], np.int32)},
            "offsets",
        ),
    ],
)
def test_bad_input_is_invalid_and_names_the_value(
    bpe_tokenizer: TextTokenizer, inputs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidInput) as e:
        translate(llm_request(**inputs), bpe_tokenizer, LIMITS)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"beam_width": 2}, "beam_width=2"),
        ({"num_return_sequences": 3}, "num_return_sequences=3"),
        ({"return_context_logits": True}, "return_context_logits"),
    ],
)
def test_unsupported_features_are_refused(
    bpe_tokenizer: TextTokenizer, inputs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(Unsupported, match=fragment):
        translate(llm_request(text_input="hi", max_tokens=4, **inputs), bpe_tokenizer, LIMITS)


def test_batch_larger_than_one_is_refused_clearly(bpe_tokenizer: TextTokenizer) -> None:
    two = Tensor("text_input", DataType.BYTES, np.array([[b"a"], [b"b"]], dtype=object))
    with pytest.raises(Unsupported, match=r"batch size 2; .* one prompt per request"):
        translate(llm_request(text_input=two, max_tokens=4), bpe_tokenizer, LIMITS)


def test_engine_prompt_limit() -> None:
    limits = ModelLimits(300, 128, True, max_prompt_len=8)
    with pytest.raises(InvalidInput, match=r"at most 8 .*max_input_len"):
        translate(llm_request(input_ids=[1] * 9, request_output_len=2), None, limits)


def test_streaming_needs_a_decoupled_model(bpe_tokenizer: TextTokenizer) -> None:
    limits = ModelLimits(300, 128, decoupled=False)
    with pytest.raises(InvalidInput, match="decoupled"):
        translate(llm_request(text_input="hi", max_tokens=4, stream=True), bpe_tokenizer, limits)


def test_text_contract_without_tokenizer_is_unsupported() -> None:
    with pytest.raises(Unsupported, match="no tokenizer"):
        translate(llm_request(text_input="hi", max_tokens=4), None, LIMITS)


def test_unknown_requested_output_is_refused() -> None:
    with pytest.raises(Unsupported, match="context_logits"):
        translate(llm_request(outputs=["context_logits"], input_ids=[1], request_output_len=2), None, LIMITS)


def test_stop_target() -> None:
    assert stop_target(llm_request(input_ids=[1], request_output_len=2)) is None
    assert (
        stop_target(llm_request("abc", input_ids=[1], input_lengths=0, request_output_len=0, stop=True))
        == "abc"
    )
    with pytest.raises(InvalidInput, match="request id"):
        stop_target(llm_request("", input_ids=[1], stop=True))

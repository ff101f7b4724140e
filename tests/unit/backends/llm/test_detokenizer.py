"""Incremental detokenization: deltas concatenate to the full decode, no split characters, spaces kept."""

from __future__ import annotations

import random

import pytest

from server.backends.llm.detokenizer import IncrementalDetokenizer
from server.backends.llm.tokenizer import TextTokenizer

TEXTS = [
    "Hello world, this is streaming.",
    "日本語のテキスト 🙂🚀 and café naïve",
    "  leading spaces and   runs of spaces  ",
    "emoji🙂between🚀words",
]


def _stream(tok: TextTokenizer, prompt: list[int], ids: list[int], chunk: int = 1) -> list[str]:
    detok = IncrementalDetokenizer(tok, prompt)
    deltas = [detok.push(ids[i : i + chunk]) for i in range(0, len(ids), chunk)]
    deltas.append(detok.flush())
    return deltas


@pytest.mark.parametrize("text", TEXTS)
def test_token_by_token_deltas_concatenate_to_the_decoded_output(tokenizer: TextTokenizer, text: str) -> None:
    prompt = tokenizer.encode("The answer:")
    ids = tokenizer.encode(text, add_special_tokens=False)
    deltas = _stream(tokenizer, prompt, ids)
    full = tokenizer.decode(prompt + ids)
    assert "".join(deltas) == full[len(tokenizer.decode(prompt)) :]
    assert all("\ufffd" not in d for d in deltas), deltas


def test_multibyte_characters_are_never_split(bpe_tokenizer: TextTokenizer) -> None:
    ids = bpe_tokenizer.encode("🙂", add_special_tokens=False)
    assert len(ids) > 1, "the tiny vocabulary must split the emoji for this test to mean anything"
    detok = IncrementalDetokenizer(bpe_tokenizer, bpe_tokenizer.encode("x"))
    out = [detok.push([t]) for t in ids]
    assert out[:-1] == [""] * (len(ids) - 1)
    assert out[-1] == "🙂"


def test_sentencepiece_word_starts_keep_their_space(sp_tokenizer: TextTokenizer) -> None:
    prompt = sp_tokenizer.encode("Hello")
    ids = sp_tokenizer.encode("Hello world the end", add_special_tokens=False)
    assert sp_tokenizer.decode(ids[1:2]).startswith(" ") is False, "decoding alone drops the space"
    text = "".join(_stream(sp_tokenizer, prompt, ids))
    assert text == " Hello world the end"


@pytest.mark.parametrize("chunk", [2, 3, 7])
def test_chunked_deltas_match_token_by_token(tokenizer: TextTokenizer, chunk: int) -> None:
    prompt = tokenizer.encode("Q:")
    ids = tokenizer.encode(" ".join(TEXTS), add_special_tokens=False)
    assert "".join(_stream(tokenizer, prompt, ids, chunk)) == "".join(_stream(tokenizer, prompt, ids, 1))


def test_special_tokens_are_skipped(bpe_tokenizer: TextTokenizer) -> None:
    eos = bpe_tokenizer.eos_token_id
    assert eos is not None
    ids = [*bpe_tokenizer.encode("done", add_special_tokens=False), eos]
    assert "".join(_stream(bpe_tokenizer, bpe_tokenizer.encode("x"), ids)) == "done"


def test_random_token_soup_round_trips(bpe_tokenizer: TextTokenizer) -> None:
    """Even invalid byte sequences come out in full at the end (flush), matching the full decode."""
    rng = random.Random(0)
    ids = [rng.randrange(3, bpe_tokenizer.vocab_size) for _ in range(200)]
    prompt = bpe_tokenizer.encode("p")
    out = "".join(_stream(bpe_tokenizer, prompt, ids))
    assert out == bpe_tokenizer.decode(prompt + ids)[len(bpe_tokenizer.decode(prompt)) :]


def test_long_generation_keeps_a_bounded_window(bpe_tokenizer: TextTokenizer) -> None:
    detok = IncrementalDetokenizer(bpe_tokenizer, bpe_tokenizer.encode("x"))
    ids = bpe_tokenizer.encode("word " * 400, add_special_tokens=False)
    text = "".join(detok.push([t]) for t in ids) + detok.flush()
    assert text == "word " * 400
    assert len(detok._ids) < 80

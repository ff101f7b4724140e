"""Tokenizers for the LLM serving tests, trained once per session and loaded as the backends load them."""

from __future__ import annotations

import pytest

from server.backends.llm.tokenizer import TextTokenizer
from tests.support.tiny_tokenizer import byte_level_bpe, save_and_load, sentencepiece_bpe


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    return save_and_load(byte_level_bpe(), tmp_path_factory.mktemp("bpe"))


@pytest.fixture(scope="session")
def sp_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    return save_and_load(sentencepiece_bpe(), tmp_path_factory.mktemp("sp"))


@pytest.fixture(scope="session", params=["bpe", "sp"])
def tokenizer(request: pytest.FixtureRequest) -> TextTokenizer:
    return request.getfixturevalue(f"{request.param}_tokenizer")

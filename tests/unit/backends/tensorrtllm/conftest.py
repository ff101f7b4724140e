"""The tokenizer fixtures of the LLM serving tests, shared here."""

from tests.unit.backends.llm.conftest import bpe_tokenizer, sp_tokenizer, tokenizer

__all__ = ["bpe_tokenizer", "sp_tokenizer", "tokenizer"]

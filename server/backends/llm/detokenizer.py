"""Incremental detokenization that never splits a UTF-8 character and keeps word spacing right."""

from __future__ import annotations

from collections.abc import Sequence

from server.backends.llm.tokenizer import TextTokenizer

_REPLACEMENT = "\ufffd"
_CONTEXT_TOKENS = 5
"""Prompt tokens kept as left context, so a word-initial token decodes with its leading space."""


class IncrementalDetokenizer:
    """Turns generated ids into text deltas whose concatenation is the decoded output.

    Decoding one token at a time garbles multi-byte characters and drops leading spaces (BE #196, #606).
    Instead it decodes a sliding window `ids[prefix:]` and emits only what the window adds beyond
    `ids[prefix:read]`, and only once that text no longer ends in an incomplete character (U+FFFD).
    """

    def __init__(
        self, tokenizer: TextTokenizer, prompt_ids: Sequence[int], skip_special_tokens: bool = True
    ) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = list(prompt_ids[-_CONTEXT_TOKENS:])
        self._prefix = 0
        self._read = len(self._ids)
        self._prefix_text = self._decode(self._prefix, self._read)

    def _decode(self, start: int, end: int | None = None) -> str:
        return self._tok.decode(self._ids[start:end], skip_special_tokens=self._skip)

    def push(self, token_ids: Sequence[int]) -> str:
        """Add generated ids; return the text they complete (possibly empty while a character is split)."""
        if not token_ids:
            return ""
        self._ids.extend(token_ids)
        text = self._decode(self._prefix)
        if text.endswith(_REPLACEMENT) or len(text) <= len(self._prefix_text):
            return ""
        return self._advance(text)

    def flush(self) -> str:
        """At the end of generation: whatever is still held back, even an incomplete character."""
        if self._read == len(self._ids):
            return ""
        text = self._decode(self._prefix)
        return self._advance(text) if len(text) > len(self._prefix_text) else ""

    def _advance(self, text: str) -> str:
        delta = text[len(self._prefix_text) :]
        # The new window starts where the emitted text ended, keeping the last read tokens as context.
        self._prefix, self._read = self._read, len(self._ids)
        self._prefix_text = self._decode(self._prefix, self._read)
        self._trim()
        return delta

    def _trim(self) -> None:
        # Ids before the window are never decoded again; drop them so long generations stay O(window).
        if self._prefix > 64:
            drop = self._prefix
            del self._ids[:drop]
            self._prefix -= drop
            self._read -= drop

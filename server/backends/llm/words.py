"""Stop and bad word lists: strings to tokenize, or TensorRT-LLM's INT32 [2, N] packed form."""

from __future__ import annotations

import numpy as np

from server.backends.llm.tokenizer import TextTokenizer
from server.errors import InvalidInput

TokenSequences = tuple[tuple[int, ...], ...]


def unpack_word_list(name: str, packed: np.ndarray) -> TokenSequences:
    """Decode the [2, N] form: row 0 the concatenated ids (padded with 0), row 1 the cumulative end
    offsets (padded with -1). Example: words [5, 6] and [7] -> [[5, 6, 7], [2, 3, -1]].

    Raises:
        InvalidInput: not [2, N], offsets not increasing, or past the ids.
    """
    if packed.ndim != 2 or packed.shape[0] != 2:
        raise InvalidInput(f"input '{name}' must have shape [2, N] per batch item, got {list(packed.shape)}")
    ids, offsets = packed[0], packed[1]
    sequences: list[tuple[int, ...]] = []
    start = 0
    for end in offsets.tolist():
        if end < 0:
            break
        if end <= start or end > ids.shape[0]:
            raise InvalidInput(
                f"input '{name}': offsets {offsets.tolist()} must increase and stay within {ids.shape[0]} ids"
            )
        sequences.append(tuple(int(t) for t in ids[start:end]))
        start = end
    return tuple(sequences)


def tokenize_words(name: str, words: list[str], tokenizer: TextTokenizer | None) -> TokenSequences:
    """Each non-empty word tokenized alone, without special tokens (as TensorRT-LLM's preprocessing does).

    Raises:
        InvalidInput: words given but the model has no tokenizer.
    """
    words = [w for w in words if w]
    if not words:
        return ()
    if tokenizer is None:
        raise InvalidInput(
            f"input '{name}' holds strings but this model has no tokenizer; send '{name}_list' ids"
        )
    return tuple(seq for seq in (tuple(tokenizer.encode(w, add_special_tokens=False)) for w in words) if seq)


def check_vocab(name: str, sequences: TokenSequences, vocab_size: int) -> None:
    for seq in sequences:
        for token in seq:
            if not 0 <= token < vocab_size:
                raise InvalidInput(
                    f"input '{name}': token id {token} is outside the vocabulary [0, {vocab_size})"
                )

"""Per-step sampling inputs gathered from the batch: which rows need which transform, as tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

from server.engine.runner import BatchItem


@dataclass(frozen=True)
class Penalties:
    """Rows with a repetition, presence or frequency penalty, and what they have seen so far."""

    rows: torch.Tensor
    seen: torch.Tensor
    """bool [rows, vocab]: the token occurs in the prompt or the output."""
    output_counts: torch.Tensor
    """[rows, vocab] occurrences in the output."""
    repetition: torch.Tensor
    presence: torch.Tensor
    frequency: torch.Tensor


def build_penalties(
    items: Sequence[BatchItem], vocab_size: int, dtype: torch.dtype, device: torch.device
) -> Penalties | None:
    rows = [
        i
        for i, it in enumerate(items)
        if it.sampling.repetition_penalty != 1.0
        or it.sampling.presence_penalty != 0.0
        or it.sampling.frequency_penalty != 0.0
    ]
    if not rows:
        return None
    chosen = [items[i] for i in rows]
    outputs = _padded([it.output_token_ids for it in chosen], vocab_size)
    both = _padded([chain(_prompt(it), it.output_token_ids) for it in chosen], vocab_size)
    counts = torch.zeros(len(rows), vocab_size + 1, dtype=torch.int32, device=device)
    counts.scatter_add_(1, outputs.to(device), torch.ones_like(outputs, dtype=torch.int32, device=device))
    seen = torch.zeros(len(rows), vocab_size + 1, dtype=torch.bool, device=device)
    seen.scatter_(1, both.to(device), True)

    def column(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    return Penalties(
        rows=torch.tensor(rows, device=device),
        seen=seen[:, :vocab_size],
        output_counts=counts[:, :vocab_size],
        repetition=column([it.sampling.repetition_penalty for it in chosen]),
        presence=column([it.sampling.presence_penalty for it in chosen]),
        frequency=column([it.sampling.frequency_penalty for it in chosen]),
    )


def _padded(token_lists: Sequence[object], pad: int) -> torch.Tensor:
    """[len(token_lists), longest] int64, padded with `pad` (a scratch column past the vocabulary)."""
    arrays = [np.fromiter(tokens, dtype=np.int64) for tokens in token_lists]  # type: ignore[call-overload]
    width = max(1, *(len(a) for a in arrays))
    out = np.full((len(arrays), width), pad, dtype=np.int64)
    for row, array in enumerate(arrays):
        out[row, : len(array)] = array
    return torch.from_numpy(out)


def banned_tokens(items: Sequence[BatchItem], eos_token_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """(rows, tokens) that must not be sampled now: stop tokens before min_tokens, and the token that would
    complete a bad word given the tokens so far."""
    rows: list[int] = []
    tokens: list[int] = []
    for row, item in enumerate(items):
        params = item.sampling
        if len(item.output_token_ids) < params.min_tokens:
            stops = set(params.stop_token_ids)
            if not params.ignore_eos:
                stops.update((params.end_id,) if params.end_id is not None else eos_token_ids)
            rows += [row] * len(stops)
            tokens += sorted(stops)
        for word in params.bad_words:
            if _completes(item, word):
                rows.append(row)
                tokens.append(word[-1])
    return rows, tokens


def _completes(item: BatchItem, word: Sequence[int]) -> bool:
    """True when the sequence so far ends with all of `word` but its last token."""
    need = len(word) - 1
    if need == 0:
        return True
    out = item.output_token_ids
    if len(out) >= need:
        return list(out[len(out) - need :]) == list(word[:-1])
    prompt = _prompt(item)
    tail = list(prompt[max(0, len(prompt) - (need - len(out))) :]) + list(out)
    return tail == list(word[:-1])


def _prompt(item: BatchItem) -> Sequence[int]:
    """The prompt's tokens; empty when the engine does not pass them."""
    tokens = item.prompt_token_ids
    return tokens if len(tokens) <= item.prompt_len else tokens[: item.prompt_len]

"""Batched logits transforms: penalties, banned tokens, temperature, top-k, top-p and min-p filtering."""

from __future__ import annotations

import torch


def apply_penalties(
    logits: torch.Tensor,
    seen: torch.Tensor,
    output_counts: torch.Tensor,
    repetition: torch.Tensor,
    presence: torch.Tensor,
    frequency: torch.Tensor,
) -> torch.Tensor:
    """Penalties as Hugging Face and vLLM define them, for rows [R, vocab].

    `seen` (bool): the token occurs in the prompt or the output (repetition penalty: positive logits are
    divided by it, negative ones multiplied). `output_counts`: occurrences in the output only (frequency
    penalty subtracts count * f, presence penalty subtracts p once the count is positive).
    """
    rep = repetition[:, None]
    penalised = torch.where(logits > 0, logits / rep, logits * rep)
    logits = torch.where(seen, penalised, logits)
    counts = output_counts.to(logits.dtype)
    return logits - frequency[:, None] * counts - presence[:, None] * (counts > 0).to(logits.dtype)


def ban_tokens(logits: torch.Tensor, rows: list[int], tokens: list[int]) -> None:
    """Sets logits[rows[i], tokens[i]] to -inf in place: these tokens cannot be chosen this step."""
    if rows:
        index = (torch.tensor(rows, device=logits.device), torch.tensor(tokens, device=logits.device))
        logits.index_put_(index, torch.tensor(float("-inf"), device=logits.device))


def filter_top_k_top_p(
    logits: torch.Tensor, top_k: torch.Tensor | None, top_p: torch.Tensor | None
) -> torch.Tensor:
    """Keeps, per row, the top_k largest logits (ties included) and the smallest set whose probability
    reaches top_p (at least one token); the rest become -inf. top_k: [R] ints in 1..vocab; top_p: [R]."""
    sorted_logits, order = logits.sort(dim=-1, descending=False)
    vocab = logits.shape[-1]
    if top_k is not None:
        kth = sorted_logits.gather(1, (vocab - top_k).clamp(0, vocab - 1)[:, None])
        sorted_logits = sorted_logits.masked_fill(sorted_logits < kth, float("-inf"))
    if top_p is not None:
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - top_p)[:, None]
        drop[:, -1] = False
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(1, order, sorted_logits)


def filter_min_p(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Drops tokens whose probability is below min_p times the row's most likely token's."""
    probs = logits.softmax(dim=-1)
    threshold = min_p[:, None] * probs.amax(dim=-1, keepdim=True)
    return logits.masked_fill(probs < threshold, float("-inf"))


def sample_from(logits: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One draw per row from softmax(logits) using exponential noise [R, vocab] (argmax of p / E)."""
    probs = logits.softmax(dim=-1)
    return probs.div_(noise).argmax(dim=-1)

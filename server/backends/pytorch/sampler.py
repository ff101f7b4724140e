"""Batched token selection for one step: penalties, bans, greedy or seeded random draws, logprobs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from server.backends.pytorch.logits_processors import (
    apply_penalties,
    ban_tokens,
    filter_min_p,
    filter_top_k_top_p,
    sample_from,
)
from server.backends.pytorch.sampling_inputs import banned_tokens, build_penalties
from server.engine.runner import BatchItem, StepOutput

_MASK64 = (1 << 63) - 1


def draw_seed(seed: int, position: int) -> int:
    """The generator seed for output position `position` of a request seeded with `seed` (SplitMix64).

    Deriving each draw from (seed, position) alone makes a seeded request reproduce its tokens whatever
    it was batched with, and after preemption, when its tokens are recomputed and sampling resumes.
    """
    z = (seed * 0x9E3779B97F4A7C15 + position + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & _MASK64


class Sampler:
    """Chooses one token per row of logits; each row is one request's last position."""

    def __init__(self, vocab_size: int, eos_token_ids: Sequence[int], device: torch.device) -> None:
        self.vocab_size = vocab_size
        self.eos_token_ids = tuple(eos_token_ids)
        self.device = device
        self._unseeded = torch.Generator(device=device)
        self._unseeded.seed()
        self._seeded: dict[str, torch.Generator] = {}

    def release(self, request_id: str) -> None:
        self._seeded.pop(request_id, None)

    def sample(self, logits: torch.Tensor, items: Sequence[BatchItem]) -> list[StepOutput]:
        """logits: float32 [len(items), vocab]. NaN/inf logits yield an error for that item only."""
        bad = ~torch.isfinite(logits).all(dim=-1)
        logits = logits.masked_fill(bad[:, None], 0.0)
        want_logprobs = any(it.sampling.logprobs for it in items)
        raw_logprobs = logits.log_softmax(dim=-1) if want_logprobs else None
        logits = self._constrain(logits, items)
        tokens = logits.argmax(dim=-1)
        random_rows = [i for i, it in enumerate(items) if not it.sampling.greedy]
        if random_rows:
            index = torch.tensor(random_rows, device=self.device)
            tokens[index] = self._draw(logits.index_select(0, index), [items[i] for i in random_rows])
        columns = [tokens.double(), bad.double()]
        if raw_logprobs is not None:
            columns.append(raw_logprobs.gather(1, tokens[:, None])[:, 0].double())
        host = torch.stack(columns).tolist()
        return [
            StepOutput(
                token_id=int(host[0][i]),
                logprob=host[2][i] if raw_logprobs is not None and items[i].sampling.logprobs else None,
                error="the model produced NaN or infinite logits" if host[1][i] else None,
            )
            for i in range(len(items))
        ]

    def _constrain(self, logits: torch.Tensor, items: Sequence[BatchItem]) -> torch.Tensor:
        """Penalties and banned tokens: they apply to greedy and random requests alike."""
        penalties = build_penalties(items, self.vocab_size, logits.dtype, self.device)
        if penalties is not None:
            rows = penalties.rows
            logits = logits.clone()
            logits[rows] = apply_penalties(
                logits.index_select(0, rows),
                penalties.seen,
                penalties.output_counts,
                penalties.repetition,
                penalties.presence,
                penalties.frequency,
            )
        ban_rows, ban_ids = banned_tokens(items, self.eos_token_ids)
        if ban_rows:
            logits = logits if penalties is not None else logits.clone()
            ban_tokens(logits, ban_rows, ban_ids)
        return logits

    def _draw(self, logits: torch.Tensor, items: Sequence[BatchItem]) -> torch.Tensor:
        """Temperature, top-k, top-p, min-p, then one draw per row."""
        params = [it.sampling for it in items]
        logits = logits / torch.tensor([p.temperature for p in params], device=self.device)[:, None]
        vocab = self.vocab_size
        top_k = [p.top_k if 0 < p.top_k < vocab else vocab for p in params]
        top_p = [p.top_p for p in params]
        if any(k < vocab for k in top_k) or any(p < 1.0 for p in top_p):
            logits = filter_top_k_top_p(
                logits,
                torch.tensor(top_k, device=self.device) if any(k < vocab for k in top_k) else None,
                torch.tensor(top_p, device=self.device) if any(p < 1.0 for p in top_p) else None,
            )
        if any(p.min_p > 0.0 for p in params):
            logits = filter_min_p(logits, torch.tensor([p.min_p for p in params], device=self.device))
        return sample_from(logits, self._noise(items, logits.shape[-1]))

    def _noise(self, items: Sequence[BatchItem], vocab: int) -> torch.Tensor:
        noise = torch.empty(len(items), vocab, device=self.device)
        noise.exponential_(generator=self._unseeded)
        for row, item in enumerate(items):
            seed = item.sampling.seed
            if seed is not None:
                generator = self._seeded.get(item.request_id)
                if generator is None:
                    generator = self._seeded[item.request_id] = torch.Generator(device=self.device)
                generator.manual_seed(draw_seed(seed, len(item.output_token_ids)))
                noise[row].exponential_(generator=generator)
        return noise.clamp_min_(torch.finfo(noise.dtype).tiny)

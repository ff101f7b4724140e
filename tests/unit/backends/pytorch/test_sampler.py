"""Sampler: each knob's effect on batched logits, seeded determinism, logprobs and per-row failures."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pytest
import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from server.backends.pytorch.sampler import Sampler, draw_seed
from server.engine.runner import BatchItem
from server.engine.sampling_params import SamplingParams

VOCAB = 16
EOS = 3


def item(
    rid: str = "r",
    *,
    outputs: Sequence[int] = (),
    prompt: Sequence[int] = (5, 6),
    **params: object,
) -> BatchItem:
    sampling = SamplingParams(**{"max_tokens": 64, **params})  # type: ignore[arg-type]
    return BatchItem(
        request_id=rid,
        token_ids=[1],
        start_pos=len(prompt) + len(outputs) - 1,
        block_table=[0],
        sample=True,
        sampling=sampling,
        prompt_len=len(prompt),
        output_token_ids=list(outputs),
        prompt_token_ids=list(prompt),
    )


def sampler() -> Sampler:
    return Sampler(VOCAB, (EOS,), torch.device("cpu"))


def ramp(rows: int = 1) -> torch.Tensor:
    """Logits rising with the token id: token VOCAB-1 is the argmax."""
    return torch.arange(VOCAB, dtype=torch.float32).repeat(rows, 1) / 4


def tokens(s: Sampler, logits: torch.Tensor, items: Sequence[BatchItem]) -> list[int]:
    outs = s.sample(logits, items)
    assert all(o.error is None for o in outs)
    return [o.token_id for o in outs]


def draws(params: dict[str, object], n: int = 400, logits: torch.Tensor | None = None) -> Counter[int]:
    """n independent draws (one per row, distinct seeds) from the same logits."""
    rows = [item(f"r{i}", seed=i, **params) for i in range(n)]
    base = ramp() if logits is None else logits
    return Counter(tokens(sampler(), base.repeat(n, 1), rows))


def test_greedy_is_argmax_per_row() -> None:
    logits = torch.randn(5, VOCAB, generator=torch.Generator().manual_seed(0))
    got = tokens(sampler(), logits, [item(f"r{i}", temperature=0.0) for i in range(5)])
    assert got == logits.argmax(-1).tolist()


def test_top_k_one_is_greedy_even_with_temperature() -> None:
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(1))
    got = tokens(sampler(), logits, [item(f"r{i}", temperature=5.0, top_k=1) for i in range(3)])
    assert got == logits.argmax(-1).tolist()


def test_temperature_sampling_follows_softmax() -> None:
    counts = draws({"temperature": 1.0}, n=2000)
    probs = torch.softmax(ramp()[0], -1)
    for token in (VOCAB - 1, VOCAB - 2, VOCAB - 5):
        assert abs(counts[token] / 2000 - probs[token].item()) < 0.04
    assert len(counts) > 6


def test_low_temperature_concentrates_high_temperature_spreads() -> None:
    cold, hot = draws({"temperature": 0.01}), draws({"temperature": 20.0})
    assert cold[VOCAB - 1] == 400
    assert len(hot) == VOCAB


def test_top_k_limits_to_k_largest() -> None:
    assert set(draws({"temperature": 10.0, "top_k": 3})) == {VOCAB - 1, VOCAB - 2, VOCAB - 3}


def test_top_p_keeps_smallest_set_reaching_p() -> None:
    logits = torch.full((1, VOCAB), -10.0)
    logits[0, [4, 7, 9]] = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    assert set(draws({"top_p": 0.7}, logits=logits)) == {4, 7}
    assert set(draws({"top_p": 0.4}, logits=logits)) == {4}


def test_min_p_drops_tokens_below_fraction_of_best() -> None:
    logits = torch.full((1, VOCAB), -10.0)
    logits[0, [1, 2, 3]] = torch.log(torch.tensor([0.5, 0.3, 0.1]))
    assert set(draws({"min_p": 0.5}, logits=logits)) == {1, 2}


def test_repetition_penalty_matches_transformers() -> None:
    logits = torch.randn(1, VOCAB, generator=torch.Generator().manual_seed(2)) * 3
    row = item(repetition_penalty=1.7, temperature=0.0, prompt=[2, 5], outputs=[9, 5])
    want = RepetitionPenaltyLogitsProcessor(1.7)(torch.tensor([[2, 5, 9, 5]]), logits.clone())
    got = sampler()._constrain(logits.clone(), [row])
    torch.testing.assert_close(got, want)


def test_presence_and_frequency_penalties_count_output_tokens_only() -> None:
    logits = torch.zeros(1, VOCAB)
    row = item(presence_penalty=0.5, frequency_penalty=0.25, prompt=[7], outputs=[4, 4, 6])
    got = sampler()._constrain(logits, [row])[0]
    assert got[4].item() == pytest.approx(-(0.5 + 2 * 0.25))
    assert got[6].item() == pytest.approx(-(0.5 + 0.25))
    assert got[7].item() == 0.0


def test_penalty_changes_greedy_choice() -> None:
    logits = ramp()
    assert tokens(sampler(), logits, [item(temperature=0.0, outputs=[VOCAB - 1], frequency_penalty=2.0)]) == [
        VOCAB - 2
    ]


def test_min_tokens_masks_eos_end_id_and_stop_ids_until_reached() -> None:
    logits = torch.zeros(1, VOCAB)
    logits[0, [EOS, 8, 11]] = 10.0
    s = sampler()
    masked = item(temperature=0.0, min_tokens=2, outputs=[1], stop_token_ids=(8,))
    assert tokens(s, logits, [masked]) == [11]
    end = item(temperature=0.0, min_tokens=2, outputs=[1], end_id=11, stop_token_ids=(8,))
    assert tokens(s, logits, [end]) == [EOS]  # end_id replaces the model's eos ids
    reached = item(temperature=0.0, min_tokens=2, outputs=[1, 1], stop_token_ids=(8,))
    assert tokens(s, logits, [reached]) == [EOS]
    ignore = item(temperature=0.0, min_tokens=2, outputs=[1], ignore_eos=True)
    assert tokens(s, logits, [ignore]) == [EOS]  # eos is not a stop token then: nothing to mask


def test_bad_words_block_the_completing_token() -> None:
    logits = ramp()
    top = VOCAB - 1
    s = sampler()
    assert tokens(s, logits, [item(temperature=0.0, bad_words=((top,),))]) == [top - 1]
    # a two-token bad word is blocked only after its first token, also when that token ends the prompt
    word = ((9, top),)
    assert tokens(s, logits, [item(temperature=0.0, bad_words=word, outputs=[9])]) == [top - 1]
    assert tokens(s, logits, [item(temperature=0.0, bad_words=word, prompt=[1, 9])]) == [top - 1]
    assert tokens(s, logits, [item(temperature=0.0, bad_words=word, outputs=[8])]) == [top]


def test_same_seed_same_tokens_across_batches_and_positions() -> None:
    logits = torch.zeros(1, VOCAB)
    params = {"temperature": 1.0, "seed": 1234}
    alone = [tokens(sampler(), logits, [item("a", outputs=[0] * i, **params)])[0] for i in range(20)]
    crowd = []
    for i in range(20):
        batch = [item("x", temperature=1.0), item("a", outputs=[0] * i, **params), item("y", seed=9)]
        crowd.append(tokens(sampler(), logits.repeat(3, 1), batch)[1])
    assert alone == crowd
    assert len(set(alone)) > 5  # each position draws afresh
    other = [tokens(sampler(), logits, [item("a", outputs=[0] * i, seed=99)])[0] for i in range(20)]
    assert other != alone


def test_draw_seed_depends_on_seed_and_position() -> None:
    assert draw_seed(1, 0) == draw_seed(1, 0)
    assert len({draw_seed(s, p) for s in range(10) for p in range(10)}) == 100


def test_logprob_of_chosen_token_is_raw_log_softmax() -> None:
    logits = torch.randn(2, VOCAB, generator=torch.Generator().manual_seed(3))
    outs = sampler().sample(logits, [item("a", temperature=0.0, logprobs=True), item("b", temperature=0.0)])
    want = torch.log_softmax(logits[0], -1).max().item()
    assert outs[0].logprob == pytest.approx(want, abs=1e-6)
    assert outs[1].logprob is None


def test_non_finite_logits_fail_only_their_row() -> None:
    logits = ramp(3)
    logits[1, 4] = math.nan
    logits[2, 0] = math.inf
    outs = sampler().sample(logits, [item("a", temperature=0.0), item("b", temperature=1.0), item("c")])
    assert outs[0].error is None and outs[0].token_id == VOCAB - 1
    assert outs[1].error is not None and "NaN" in outs[1].error
    assert outs[2].error is not None


def test_release_forgets_seeded_generator() -> None:
    s = sampler()
    s.sample(torch.zeros(1, VOCAB), [item("a", temperature=1.0, seed=5)])
    assert "a" in s._seeded
    s.release("a")
    assert "a" not in s._seeded

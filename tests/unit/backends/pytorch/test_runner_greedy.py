"""Greedy outputs equal transformers generate token for token, for each architecture and batch shape."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from server.backends.pytorch.attention_metadata import DENSE_PREFILL_MIN
from server.backends.pytorch.kernels.paged_attention import PagedAttentionKernel
from server.backends.pytorch.runner import PyTorchModelRunner
from server.engine.runner import BatchItem
from server.engine.sampling_params import SamplingParams
from tests.support.tiny_llm import ARCHITECTURES, hf_greedy, off_argmax_steps, tiny_llm
from tests.unit.backends.pytorch.driver import PagedDriver, greedy_seqs

BACKENDS = ("native", "torch")


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llm(tmp_path_factory, request.param)


def runner_for(path: Path, backend: str, **options: object) -> PyTorchModelRunner:
    if backend == "native" and PagedAttentionKernel.load() is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    return PyTorchModelRunner.from_checkpoint(
        path,
        num_blocks=96,
        block_size=4,
        attention_backend=backend,
        **options,  # type: ignore[arg-type]
    )


def prompts(vocab: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, vocab) for _ in range(n - 1)] for n in lengths]


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_request_matches_transformers(model_dir: Path, backend: str) -> None:
    runner = runner_for(model_dir, backend)
    [prompt] = prompts(runner.vocab_size, [30])
    [seq] = PagedDriver(runner).run(greedy_seqs([prompt], 12))
    assert seq.outputs == hf_greedy(model_dir, [prompt], 12)[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_batch_with_chunked_prefill_matches_transformers(model_dir: Path, backend: str) -> None:
    """Five requests of different lengths arrive over several steps: prompt chunks (split at 7 tokens)
    share flat steps with other requests' decodes, each at its own start position."""
    runner = runner_for(model_dir, backend)
    batch = prompts(runner.vocab_size, [5, 41, 17, 2, 9], seed=1)
    driver = PagedDriver(runner, token_budget=24, max_chunk=7)
    got = driver.run(greedy_seqs(batch, 10, arrivals=[0, 0, 2, 3, 5]))
    assert [s.outputs for s in got] == hf_greedy(model_dir, batch, 10)
    mixed = [step for step in driver.steps if {len(i.token_ids) == 1 for i in step} == {True, False}]
    assert mixed, "no step mixed decodes with prompt chunks"


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_fresh_prompts_next_to_decodes_match_transformers(model_dir: Path, backend: str) -> None:
    """Whole prompts of DENSE_PREFILL_MIN tokens or more (dense SDPA on the native path, unless a sliding
    window is shorter) share steps with another request's decodes."""
    runner = runner_for(model_dir, backend)
    batch = prompts(runner.vocab_size, [DENSE_PREFILL_MIN + 6, 5, DENSE_PREFILL_MIN + 26], seed=3)
    driver = PagedDriver(runner, token_budget=256, max_chunk=256)
    got = driver.run(greedy_seqs(batch, 8, arrivals=[0, 0, 2]))
    assert [s.outputs for s in got] == hf_greedy(model_dir, batch, 8)
    items = [i for step in driver.steps for i in step]
    fresh = [i for i in items if i.start_pos == 0 and len(i.token_ids) >= DENSE_PREFILL_MIN]
    assert len(fresh) == 2 and any(len(step) > 1 for step in driver.steps)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_tokens_are_transformers_argmax(model_dir: Path, backend: str) -> None:
    """bfloat16 rounding can flip near-ties, so each of our greedy tokens must be the argmax of
    transformers' bfloat16 logits for the same prefix, up to bfloat16 precision."""
    runner = runner_for(model_dir, backend, dtype="bfloat16")
    batch = prompts(runner.vocab_size, [12, 20, 33], seed=2)
    for seq in PagedDriver(runner).run(greedy_seqs(batch, 8)):
        assert off_argmax_steps(model_dir, seq.prompt, seq.outputs, dtype=torch.bfloat16) == []


def test_prefill_only_step_returns_none_and_keeps_kv(llama_dir: Path) -> None:
    runner = runner_for(llama_dir, "torch")
    [prompt] = prompts(runner.vocab_size, [10])
    greedy = SamplingParams(max_tokens=1, temperature=0.0)

    def item(tokens: list[int], start: int, sample: bool) -> BatchItem:
        return BatchItem("r", tokens, start, [0, 1, 2], sample, greedy, len(prompt), [])

    assert runner.execute([item(prompt[:6], 0, False)]) == [None]
    [out] = runner.execute([item(prompt[6:], 6, True)])
    assert out is not None and out.token_id == hf_greedy(llama_dir, [prompt], 1)[0][0]


def test_out_of_vocabulary_token_fails_only_its_request(llama_dir: Path) -> None:
    runner = runner_for(llama_dir, "torch")
    greedy = SamplingParams(max_tokens=1, temperature=0.0)
    good = BatchItem("good", [1, 7, 8], 0, [0], True, greedy, 3, [])
    bad = BatchItem("bad", [1, 10_000, 8], 0, [1], True, greedy, 3, [])
    out_good, out_bad = runner.execute([good, bad])
    assert out_good is not None and out_good.error is None
    assert out_good.token_id == hf_greedy(llama_dir, [[1, 7, 8]], 1)[0][0]
    assert out_bad is not None and out_bad.error is not None and "10000" in out_bad.error
    runner.release("bad")
    assert "bad" not in runner._poisoned


def test_execute_with_no_items_is_a_no_op(llama_dir: Path) -> None:
    assert runner_for(llama_dir, "torch").execute([]) == []

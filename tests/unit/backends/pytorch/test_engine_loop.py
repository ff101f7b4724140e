"""The runner under the real engine (EngineLoop + Scheduler + BlockManager): staggered arrivals,
prefix reuse and preemption still give transformers' greedy tokens, and every block comes back."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import transformers

from server.backends.pytorch.runner import PyTorchModelRunner
from server.engine.config import EngineConfig
from server.engine.loop import EngineLoop
from server.engine.outputs import FinishReason, RequestOutput
from server.engine.sampling_params import SamplingParams
from server.engine.stats import SchedulerStats
from tests.support.tiny_llm import hf_greedy

DEADLINE_S = 60.0


@dataclass
class Tracked:
    prompt: list[int]
    sampling: SamplingParams
    tokens: list[int] = field(default_factory=list)
    final: RequestOutput | None = None
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def on_output(self, out: RequestOutput) -> None:
        self.tokens.extend(out.new_token_ids)
        self.started.set()
        if out.finished:
            self.final = out
            self.done.set()


def run_engine(
    runner: PyTorchModelRunner, requests: list[Tracked], waves: int, **limits: int
) -> SchedulerStats:
    """Submits `requests` in `waves`; each wave waits until the previous one is generating."""
    loop = EngineLoop(runner, EngineConfig.from_runner(runner, **limits))
    loop.start()
    try:
        size = -(-len(requests) // waves)
        for first in range(0, len(requests), size):
            for i, r in enumerate(requests[first : first + size], start=first):
                loop.submit(f"req-{i}", r.prompt, r.sampling, r.on_output)
            for r in requests[first : first + size]:
                assert r.started.wait(DEADLINE_S), "a request produced nothing before the deadline"
        for r in requests:
            assert r.done.wait(DEADLINE_S), "a request did not finish before the deadline"
    finally:
        loop.shutdown()
    return loop.stats()


def workload(vocab: int, n: int, rng_seed: int, **params: object) -> list[Tracked]:
    """n prompts of 3-40 tokens, a third sharing a 16-token prefix; 4-12 output tokens each."""
    rng = random.Random(rng_seed)
    shared = [1] + [rng.randrange(3, vocab) for _ in range(15)]
    out = []
    for i in range(n):
        tail = [rng.randrange(3, vocab) for _ in range(rng.randrange(3, 25))]
        prompt = (
            shared + tail
            if i % 3 == 0
            else [1, *tail, *(rng.randrange(3, vocab) for _ in range(rng.randrange(0, 16)))]
        )
        max_tokens = rng.randrange(4, 13)
        sampling = SamplingParams(
            **{"max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True, **params}
        )  # type: ignore[arg-type]
        out.append(Tracked(prompt, sampling))
    return out


def load(path: Path, num_blocks: int) -> PyTorchModelRunner:
    return PyTorchModelRunner.from_checkpoint(path, num_blocks=num_blocks, block_size=4, max_model_len=128)


def test_32_staggered_requests_with_prefix_reuse_and_preemption_match_transformers(llama_dir: Path) -> None:
    runner = load(llama_dir, num_blocks=40)
    requests = workload(runner.vocab_size, 32, 0)
    stats = run_engine(runner, requests, waves=4, max_num_seqs=16, max_num_batched_tokens=48)
    for r in requests:
        assert r.final is not None and r.final.finish_reason is FinishReason.LENGTH, r.final
    want = [hf_greedy(llama_dir, [r.prompt], r.sampling.max_tokens)[0] for r in requests]
    assert [r.tokens for r in requests] == want
    assert stats.num_preemptions_total > 0, "the pool was meant to be too small for 16 running requests"
    assert stats.kv_blocks_reused_total > 0, "the shared prefix was never served from the cache"
    assert stats.kv_blocks_used == 0 and stats.num_running == stats.num_waiting == 0


def test_seeded_sampling_is_reproducible_across_preemption(llama_dir: Path) -> None:
    roomy = workload(300, 12, 1, temperature=0.9, top_k=50, seed=7)
    tight = workload(300, 12, 1, temperature=0.9, top_k=50, seed=7)
    run_engine(load(llama_dir, num_blocks=400), roomy, waves=1, max_num_seqs=12, max_num_batched_tokens=64)
    stats = run_engine(
        load(llama_dir, num_blocks=24), tight, waves=1, max_num_seqs=12, max_num_batched_tokens=64
    )
    assert stats.num_preemptions_total > 0
    assert [r.tokens for r in tight] == [r.tokens for r in roomy]
    assert len({tuple(r.tokens) for r in roomy}) > 1


def test_repetition_penalty_through_the_engine_matches_transformers(llama_dir: Path) -> None:
    """The penalty covers prompt tokens too, even those served from the prefix cache."""
    runner = load(llama_dir, num_blocks=200)
    requests = workload(runner.vocab_size, 6, 2, repetition_penalty=1.5)
    run_engine(runner, requests, waves=2, max_num_seqs=8, max_num_batched_tokens=64)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(llama_dir), dtype=torch.float32).eval()
    for r in requests:
        ids = torch.tensor([r.prompt])
        want = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, repetition_penalty=1.5,
            max_new_tokens=r.sampling.max_tokens, eos_token_id=None, pad_token_id=0,
        )[0, len(r.prompt) :].tolist()  # fmt: skip
        assert r.tokens == want


@pytest.mark.parametrize("logprobs", [True, False])
def test_logprobs_flow_to_outputs(llama_dir: Path, logprobs: bool) -> None:
    runner = load(llama_dir, num_blocks=64)
    [r] = workload(runner.vocab_size, 1, 3, logprobs=logprobs)
    got: list[tuple[float, ...] | None] = []
    loop = EngineLoop(runner, EngineConfig.from_runner(runner, max_num_seqs=4, max_num_batched_tokens=64))
    loop.start()

    def collect(out: RequestOutput) -> None:
        got.append(out.new_logprobs)
        r.on_output(out)

    try:
        loop.submit("lp", r.prompt, r.sampling, collect)
        assert r.done.wait(DEADLINE_S)
    finally:
        loop.shutdown()
    values = [v for chunk in got if chunk for v in chunk]
    assert len(values) == (len(r.tokens) if logprobs else 0)
    assert all(v <= 0.0 for v in values)

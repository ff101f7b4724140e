"""Builders for engine tests: tiny real configs, requests, and a driver that steps a scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.engine.config import EngineConfig
from server.engine.outputs import RequestOutput
from server.engine.request import Request
from server.engine.sampling_params import SamplingParams
from server.engine.scheduler import Scheduler
from tests.support.fake_runner import FakeRunner

VOCAB = 1000


def create_scheduler(
    *,
    num_blocks: int = 64,
    block_size: int = 16,
    max_num_seqs: int = 16,
    max_num_batched_tokens: int = 256,
    max_model_len: int = 1024,
    enable_prefix_caching: bool = True,
) -> tuple[Scheduler, FakeRunner]:
    config = EngineConfig(
        num_blocks=num_blocks,
        block_size=block_size,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=max_model_len,
        enable_prefix_caching=enable_prefix_caching,
    )
    runner = FakeRunner(
        num_blocks=num_blocks, block_size=block_size, max_model_len=max_model_len, vocab_size=VOCAB
    )
    return Scheduler(config, runner.vocab_size, runner.eos_token_ids), runner


def make_prompt(length: int, seed: int = 0) -> list[int]:
    """Deterministic distinct-looking token ids in [1, VOCAB)."""
    return [1 + (seed * 7919 + i * 104729) % (VOCAB - 1) for i in range(length)]


def create_requests(
    n: int,
    *,
    prompt_len: int = 20,
    max_tokens: int = 8,
    prefix: Sequence[int] = (),
    eos_token_ids: Sequence[int] = (0,),
    **sampling: Any,
) -> list[Request]:
    """`n` requests "req-0".. with distinct prompts of prompt_len tokens after a shared `prefix`."""
    params = SamplingParams(max_tokens=max_tokens, **sampling)
    return [
        Request(f"req-{i}", [*prefix, *make_prompt(prompt_len, seed=i + 1)], params, eos_token_ids)
        for i in range(n)
    ]


def step(scheduler: Scheduler, runner: FakeRunner) -> list[RequestOutput]:
    """One engine step, with the integrity check the engine must pass after every step."""
    out = scheduler.schedule()
    results = scheduler.update_from_output(out, runner.execute(out.items) if out.items else [])
    scheduler.check_integrity()
    return results


def run_to_completion(
    scheduler: Scheduler, runner: FakeRunner, max_steps: int = 10_000
) -> dict[str, list[RequestOutput]]:
    """Step until no request is left; returns every output, grouped by request id."""
    outputs: dict[str, list[RequestOutput]] = {}
    for _ in range(max_steps):
        if not scheduler.has_requests():
            return outputs
        for o in step(scheduler, runner):
            outputs.setdefault(o.request_id, []).append(o)
    raise AssertionError(f"requests still live after {max_steps} steps: {list(scheduler.requests)}")


def tokens_of(outputs: list[RequestOutput]) -> list[int]:
    return [t for o in outputs for t in o.new_token_ids]

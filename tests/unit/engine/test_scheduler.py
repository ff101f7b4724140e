"""Scheduler: admission limits, chunked and mixed steps, preemption by recompute, abort, finish, stats."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from server.engine.outputs import FinishReason
from server.engine.request import Request, RequestStatus
from server.engine.sampling_params import SamplingParams
from server.errors import InvalidInput, ResourceExhausted
from tests.support.fake_runner import fake_logprob, reference_generate
from tests.unit.engine.factories import (
    VOCAB,
    create_requests,
    create_scheduler,
    make_prompt,
    run_to_completion,
    step,
    tokens_of,
)


def expected(r: Request) -> list[int]:
    return reference_generate(r.token_ids[: r.num_prompt_tokens], r.sampling.max_tokens, VOCAB)


def test_outputs_match_the_reference_one_token_per_step_then_length() -> None:
    scheduler, runner = create_scheduler()
    requests = create_requests(3, prompt_len=20, max_tokens=5)
    for r in requests:
        scheduler.add_request(r)
    outputs = run_to_completion(scheduler, runner)
    for r in requests:
        outs = outputs[r.request_id]
        assert [len(o.new_token_ids) for o in outs] == [1] * 5
        assert tokens_of(outs) == expected(r)
        assert [o.finished for o in outs] == [False] * 4 + [True]
        assert outs[-1].finish_reason is FinishReason.LENGTH and outs[-1].num_output_tokens == 5
        assert outs[0].num_prompt_tokens == 20 and outs[0].new_logprobs is None
    assert scheduler.block_manager.num_used_blocks == 0
    idle = scheduler.make_stats()
    assert (idle.num_running, idle.num_waiting, idle.num_context, idle.tokens_last_step) == (0, 0, 0, 0)
    assert (idle.kv_blocks_total, idle.kv_blocks_free, idle.kv_blocks_used, idle.kv_block_size) == (
        64,
        64,
        0,
        16,
    )
    assert (idle.step_counter, idle.prompt_tokens_total, idle.generation_tokens_total) == (5, 60, 15)


def test_admission_stops_at_max_num_seqs() -> None:
    scheduler, runner = create_scheduler(max_num_seqs=2)
    for r in create_requests(4):
        scheduler.add_request(r)
    step(scheduler, runner)
    assert [rid for rid, *_ in runner.steps[0]] == ["req-0", "req-1"]
    stats = scheduler.make_stats()
    assert (stats.num_running, stats.num_waiting, stats.num_context) == (2, 2, 2)
    assert stats.tokens_last_step == 40


def test_token_budget_chunks_the_prompt_that_does_not_fit_and_stops_admitting() -> None:
    scheduler, runner = create_scheduler(max_num_batched_tokens=32, max_num_seqs=4)
    for r in create_requests(3, prompt_len=20):
        scheduler.add_request(r)
    step(scheduler, runner)
    assert runner.steps[0] == [("req-0", 0, 20, True), ("req-1", 0, 12, False)]
    assert [r.request_id for r in scheduler.waiting] == ["req-2"]
    step(scheduler, runner)
    # Step 2 mixes a decode, the rest of a chunked prompt and a newly admitted prefill.
    assert runner.steps[1] == [("req-0", 20, 1, True), ("req-1", 12, 8, True), ("req-2", 0, 20, True)]
    stats = scheduler.make_stats()
    assert (stats.num_running, stats.num_waiting, stats.num_context, stats.tokens_last_step) == (3, 0, 2, 29)


def test_long_prompt_prefills_in_chunks_and_samples_only_at_the_end() -> None:
    scheduler, runner = create_scheduler(max_num_batched_tokens=32, max_num_seqs=1, block_size=16)
    [r] = create_requests(1, prompt_len=100, max_tokens=3)
    scheduler.add_request(r)
    outputs = run_to_completion(scheduler, runner)
    chunks = [s[0] for s in runner.steps]
    assert chunks[:4] == [
        ("req-0", 0, 32, False),
        ("req-0", 32, 32, False),
        ("req-0", 64, 32, False),
        ("req-0", 96, 4, True),
    ]
    assert tokens_of(outputs["req-0"]) == expected(r)


def test_prefix_hit_skips_prefill_of_cached_blocks_and_reports_cached_tokens() -> None:
    scheduler, runner = create_scheduler(block_size=16)
    prefix = make_prompt(40, seed=99)
    first, second = create_requests(2, prompt_len=5, prefix=prefix, max_tokens=4)
    scheduler.add_request(first)
    out1 = run_to_completion(scheduler, runner)
    scheduler.add_request(second)
    out2 = run_to_completion(scheduler, runner)
    assert out1["req-0"][-1].num_cached_tokens == 0
    assert out2["req-1"][-1].num_cached_tokens == 32
    prefill = next(s for s in runner.steps if s[0][0] == "req-1")[0]
    assert prefill == ("req-1", 32, 13, True)
    item = runner.items[-1][0]
    assert list(item.prompt_token_ids[: item.prompt_len]) == second.token_ids[:45]
    assert tokens_of(out2["req-1"]) == expected(second)
    stats = scheduler.make_stats()
    assert stats.kv_blocks_reused_total == 2 and stats.prefix_cache_queries_total == 2 + 2


def test_preemption_by_recompute_resumes_with_identical_output() -> None:
    # 10 blocks of 4 tokens; 3 requests of 30 tokens each cannot all hold their blocks at once.
    scheduler, runner = create_scheduler(num_blocks=10, block_size=4, max_model_len=64)
    requests = create_requests(3, prompt_len=7, max_tokens=23, logprobs=True)
    for r in requests:
        scheduler.add_request(r)
    outputs = run_to_completion(scheduler, runner)
    stats = scheduler.make_stats()
    assert stats.num_preemptions_total > 0
    for r in requests:
        toks = tokens_of(outputs[r.request_id])
        assert toks == expected(r)
        assert [lp for o in outputs[r.request_id] for lp in o.new_logprobs or ()] == [
            fake_logprob(t) for t in toks
        ]
    assert stats.generation_tokens_total == 3 * 23 and stats.prompt_tokens_total == 3 * 7


def test_preemption_takes_the_newest_running_request_and_requeues_it_first() -> None:
    scheduler, runner = create_scheduler(num_blocks=3, block_size=4, max_model_len=12)
    a, b = create_requests(2, prompt_len=4, max_tokens=5)
    scheduler.add_request(a)
    scheduler.add_request(b)
    first = step(scheduler, runner)  # both prefilled: 1 block each, a and b now need a 2nd block
    out = scheduler.schedule()
    assert out.preempted_request_ids == ["req-1"]
    assert [i.request_id for i in out.items] == ["req-0"]  # no admission in a step that preempted
    assert b.status is RequestStatus.PREEMPTED and list(scheduler.waiting) == [b]
    scheduler.update_from_output(out, runner.execute(out.items))
    scheduler.check_integrity()
    outputs = run_to_completion(scheduler, runner)
    assert tokens_of([first[1], *outputs["req-1"]]) == expected(b)


def test_a_preempted_request_resumes_before_requests_that_were_already_waiting() -> None:
    scheduler, runner = create_scheduler(num_blocks=5, block_size=2, max_num_seqs=2, max_model_len=16)
    a, b = create_requests(2, prompt_len=2, max_tokens=6)
    [c] = create_requests(1, prompt_len=1, max_tokens=2)
    c.request_id = "c"
    for r in (a, b, c):
        scheduler.add_request(r)
    outputs: dict[str, list] = {}
    while not scheduler.make_stats().num_preemptions_total:
        for o in step(scheduler, runner):
            outputs.setdefault(o.request_id, []).append(o)
    assert [r.request_id for r in scheduler.waiting] == ["req-1", "c"]
    preempted_at = len(runner.steps)
    for rid, outs in run_to_completion(scheduler, runner).items():
        outputs.setdefault(rid, []).extend(outs)
    later = [{rid for rid, *_ in items} for items in runner.steps[preempted_at:]]
    resumed = next(i for i, ids in enumerate(later) if "req-1" in ids)
    assert resumed <= next(i for i, ids in enumerate(later) if "c" in ids)
    for r in (a, b, c):
        assert tokens_of(outputs[r.request_id]) == expected(r)


def test_abort_frees_blocks_at_once_and_sends_a_final_abort() -> None:
    scheduler, runner = create_scheduler()
    a, b = create_requests(2, max_tokens=50)
    waiting = create_requests(1, max_tokens=50)[0]
    waiting.request_id = "late"
    for r in (a, b):
        scheduler.add_request(r)
    step(scheduler, runner)
    step(scheduler, runner)
    scheduler.add_request(waiting)
    used = scheduler.block_manager.num_used_blocks
    final = scheduler.abort("req-0")
    assert final is not None and final.finished and final.finish_reason is FinishReason.ABORT
    assert final.new_token_ids == () and final.num_output_tokens == 2
    assert scheduler.block_manager.num_used_blocks == used - 2
    assert scheduler.abort("req-0") is None  # already gone: no second final output
    assert scheduler.abort("late") is not None  # a waiting request
    scheduler.check_integrity()
    step(scheduler, runner)
    assert [rid for rid, *_ in runner.steps[-1]] == ["req-1"]


@pytest.mark.parametrize(
    ("script", "sampling", "n_out", "reason"),
    [
        ([5, 0, 6], {}, 2, FinishReason.STOP),  # the model's eos id, included in the output
        ([5, 0, 6, 0, 0], {"min_tokens": 4}, 4, FinishReason.STOP),  # eos ignored before min_tokens
        ([0, 0, 0], {"ignore_eos": True}, 8, FinishReason.LENGTH),
        ([0, 7, 1], {"end_id": 7}, 2, FinishReason.STOP),  # end_id replaces the model's eos ids
        ([3, 9, 1], {"stop_token_ids": (9,), "ignore_eos": True}, 2, FinishReason.STOP),
        ([3, 9, 9], {"stop_token_ids": (9,), "min_tokens": 3}, 3, FinishReason.STOP),
    ],
)
def test_finish_conditions(
    script: list[int], sampling: dict[str, Any], n_out: int, reason: FinishReason
) -> None:
    scheduler, runner = create_scheduler()
    [r] = create_requests(1, max_tokens=8, **sampling)
    runner.script["req-0"] = script
    scheduler.add_request(r)
    outs = run_to_completion(scheduler, runner)["req-0"]
    assert outs[-1].finish_reason is reason and outs[-1].num_output_tokens == n_out
    assert tokens_of(outs)[: len(script)] == script[:n_out]


def test_finish_request_ends_with_stop_for_a_stop_string() -> None:
    scheduler, runner = create_scheduler()
    for r in create_requests(1, max_tokens=20):
        scheduler.add_request(r)
    step(scheduler, runner)
    final = scheduler.finish_request("req-0", RequestStatus.FINISHED_STOPPED)
    assert final is not None and final.finish_reason is FinishReason.STOP and final.error is None
    assert not scheduler.has_requests() and scheduler.block_manager.num_used_blocks == 0


def test_sampling_failure_fails_only_that_request() -> None:
    scheduler, runner = create_scheduler()
    requests = create_requests(3, max_tokens=6)
    runner.fail_sampling["req-1"] = 2
    for r in requests:
        scheduler.add_request(r)
    outputs = run_to_completion(scheduler, runner)
    bad = outputs["req-1"][-1]
    assert bad.finish_reason is FinishReason.ERROR and "NaN" in (bad.error or "")
    assert bad.new_token_ids == () and bad.num_output_tokens == 2
    for rid in ("req-0", "req-2"):
        assert outputs[rid][-1].finish_reason is FinishReason.LENGTH
        assert tokens_of(outputs[rid]) == expected(requests[int(rid[-1])])


def test_rejections_name_the_offending_values() -> None:
    scheduler, _ = create_scheduler(num_blocks=4, block_size=16, max_model_len=100)
    ok = SamplingParams(max_tokens=4)
    with pytest.raises(InvalidInput, match="empty"):
        scheduler.make_request("r", [], ok)
    with pytest.raises(InvalidInput, match=r"token id 1000 at position 2 .*\[0, 1000\)"):
        scheduler.make_request("r", [1, 2, 1000, -1], ok)
    with pytest.raises(InvalidInput, match="integers"):
        scheduler.make_request("r", [1.5], ok)  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match=r"90 tokens \+ max_tokens 20 = 110 .* 100"):
        scheduler.make_request("r", [1] * 90, SamplingParams(max_tokens=20))
    with pytest.raises(ResourceExhausted, match=r"5 KV blocks .* 4 blocks"):
        scheduler.make_request("r", [1] * 60, SamplingParams(max_tokens=20))
    with pytest.raises(InvalidInput, match="top_p"):
        scheduler.make_request("r", [1], SamplingParams(top_p=0.0))
    r = scheduler.make_request("r", np.array([3, 4, 5], dtype=np.int64), ok)  # type: ignore[arg-type]
    assert r.token_ids == [3, 4, 5] and all(type(t) is int for t in r.token_ids)


def test_random_workload_with_shared_prefixes_aborts_and_a_tight_pool_keeps_outputs_exact() -> None:
    rng = random.Random(7)
    scheduler, runner = create_scheduler(
        num_blocks=24, block_size=4, max_num_batched_tokens=24, max_num_seqs=6, max_model_len=64
    )
    prefixes = [make_prompt(8, seed=s) for s in (50, 51)]
    requests: dict[str, Request] = {}
    outputs: dict[str, list] = {}
    aborted: set[str] = set()
    for n in range(40):
        if n < 30 and rng.random() < 0.6:
            prompt = [*rng.choice(prefixes), *make_prompt(rng.randint(1, 12), seed=n)]
            r = scheduler.make_request(f"r{n}", prompt, SamplingParams(max_tokens=rng.randint(1, 20)))
            requests[r.request_id] = r
            scheduler.add_request(r)
        if scheduler.requests and rng.random() < 0.1:
            victim = rng.choice(sorted(scheduler.requests))
            aborted.add(victim)
            outputs.setdefault(victim, []).append(scheduler.abort(victim))
        for o in step(scheduler, runner) if scheduler.has_requests() else []:
            outputs.setdefault(o.request_id, []).append(o)
    for rid, outs in run_to_completion(scheduler, runner).items():
        outputs.setdefault(rid, []).extend(outs)
    for rid, r in requests.items():
        outs = outputs[rid]
        assert sum(o.finished for o in outs) == 1 and outs[-1].finished
        toks = tokens_of(outs)
        if rid in aborted:
            assert toks == expected(r)[: len(toks)]
        else:
            assert toks == expected(r)
    stats = scheduler.make_stats()
    assert stats.num_preemptions_total > 0 and stats.kv_blocks_reused_total > 0
    assert stats.kv_blocks_used == 0 and stats.num_waiting == 0

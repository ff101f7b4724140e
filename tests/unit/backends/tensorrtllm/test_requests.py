"""Executor requests and responses to and from the serving layer, and iteration stats as SchedulerStats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from server.backends.llm.deltas import FinishReason
from server.backends.llm.translation import ModelLimits, translate
from server.backends.tensorrtllm.iteration_stats import IterationStatsFolder
from server.backends.tensorrtllm.requests import to_delta, to_executor_request
from tests.support.llm_requests import llm_request, packed_words

LIMITS = ModelLimits(vocab_size=300, max_model_len=256, decoupled=True)


@pytest.fixture
def trt(tmp_path: Path) -> Iterator[ModuleType]:
    from tests.support.trtllm_executor import fake_tensorrt_llm

    with fake_tensorrt_llm(tmp_path) as module:
        yield module


def test_token_request_maps_onto_the_executor_request(trt: ModuleType) -> None:
    gen = translate(
        llm_request(
            input_ids=[5, 6, 7],
            request_output_len=9,
            streaming=True,
            runtime_top_k=4,
            runtime_top_p=0.8,
            temperature=0.7,
            random_seed=11,
            min_length=2,
            repetition_penalty=1.1,
            stop_words_list=packed_words([[9], [10, 11]]),
            bad_words_list=packed_words([[12]]),
            return_log_probs=True,
        ),
        None,
        LIMITS,
    )
    r = to_executor_request(trt, gen, default_end_id=2)
    assert (r.input_token_ids, r.max_tokens, r.streaming) == ([5, 6, 7], 9, True)
    s = r.sampling_config
    assert (s.beam_width, s.top_k, s.top_p, s.seed, s.min_tokens) == (1, 4, pytest.approx(0.8), 11, 2)
    assert s.temperature == pytest.approx(0.7) and s.repetition_penalty == pytest.approx(1.1)
    assert r.output_config.return_log_probs and r.output_config.exclude_input_from_output
    assert (r.end_id, r.pad_id) == (2, 2)
    assert r.stop_words == [[9], [10, 11]] and r.bad_words == [[12]]


def test_greedy_default_is_top_k_one(trt: ModuleType) -> None:
    gen = translate(llm_request(input_ids=[5], request_output_len=3, end_id=7), None, LIMITS)
    r = to_executor_request(trt, gen, default_end_id=2)
    assert r.sampling_config.top_k == 1 and r.sampling_config.top_p is None
    assert r.end_id == 7 and not r.streaming


def test_stop_strings_make_the_executor_stream(trt: ModuleType, bpe_tokenizer: object) -> None:
    gen = translate(llm_request(text_input="hi", max_tokens=4, stop_words=["x"]), bpe_tokenizer, LIMITS)  # type: ignore[arg-type]
    assert to_executor_request(trt, gen, None).streaming


def _response(trt: ModuleType, ids: list[int], final: bool, reason: str = "NOT_FINISHED") -> object:
    result = trt.Result()
    result.is_final = final
    result.output_token_ids = [ids]
    result.finish_reasons = [getattr(trt.FinishReason, reason)]
    return trt.Response(7, result)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("END_ID", FinishReason.STOP),
        ("STOP_WORDS", FinishReason.STOP),
        ("LENGTH", FinishReason.LENGTH),
        ("CANCELLED", FinishReason.CANCELLED),
    ],
)
def test_final_responses_carry_their_finish_reason(
    trt: ModuleType, reason: str, expected: FinishReason
) -> None:
    delta = to_delta(_response(trt, [4, 5], True, reason))
    assert delta.token_ids == (4, 5) and delta.finished and delta.finish_reason is expected


def test_streaming_and_error_responses(trt: ModuleType) -> None:
    delta = to_delta(_response(trt, [4], False))
    assert delta.token_ids == (4,) and not delta.finished
    failed = to_delta(trt.Response(7, error_msg="Encountered an error in forward function"))
    assert failed.finished and failed.error == "Encountered an error in forward function"


def test_log_probs_are_this_responses_tokens(trt: ModuleType) -> None:
    response = _response(trt, [4, 5], False)
    response.result.log_probs = [[-0.1, -0.2, -0.3]]  # type: ignore[attr-defined]
    assert to_delta(response).logprobs == (-0.2, -0.3)


def test_iteration_stats_fold_onto_scheduler_stats(trt: ModuleType) -> None:
    folder = IterationStatsFolder()
    iterations = []
    for i, (ctx, gen_requests) in enumerate([(40, 0), (0, 2), (8, 2)]):
        it = trt.IterationStats()
        it.iter, it.num_active_requests, it.num_queued_requests, it.max_num_active_requests = i, 2, 1, 8
        it.inflight_batching_stats.num_ctx_tokens = ctx
        it.inflight_batching_stats.num_gen_requests = gen_requests
        it.inflight_batching_stats.num_context_requests = 1 if ctx else 0
        kv = it.kv_cache_stats
        kv.max_num_blocks, kv.free_num_blocks, kv.used_num_blocks, kv.tokens_per_block = 100, 97, 3, 32
        kv.reused_blocks, kv.missed_blocks = 1, 2
        iterations.append(it)
    folder.fold(iterations[:2])
    folder.fold(iterations[2:])
    s = folder.latest()
    assert (s.num_running, s.num_waiting, s.num_context, s.max_num_seqs, s.step_counter) == (2, 1, 1, 8, 2)
    assert (s.kv_blocks_total, s.kv_blocks_free, s.kv_blocks_used, s.kv_block_size) == (100, 97, 3, 32)
    assert (s.kv_blocks_reused_total, s.prefix_cache_queries_total) == (1, 3)
    assert (s.prompt_tokens_total, s.generation_tokens_total, s.tokens_last_step) == (48, 4, 10)
    folder.fold([])
    assert folder.latest() == s


def test_missing_optional_stats_read_as_zero(trt: ModuleType) -> None:
    it = trt.IterationStats()
    it.kv_cache_stats = None
    it.inflight_batching_stats = None
    folder = IterationStatsFolder()
    folder.fold([it])
    assert folder.latest().kv_blocks_total == 0

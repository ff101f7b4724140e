"""ModelStatistics messages built from a stats snapshot."""

from __future__ import annotations

from server.app.statistics_handler import model_statistics
from server.stats import ModelStats, ResponseOutcome


def test_snapshot_maps_to_triton_statistics() -> None:
    stats = ModelStats()
    stats.request_done(5_000, 1_000, (100, 2_000, 300))
    stats.request_done(7_000, 0, (0, 0, 0))
    stats.executed(4, 10, 20, 30)
    stats.executed(1, 1, 2, 3)
    stats.executed(4, 10, 20, 30)
    msg = model_statistics("m", 3, stats.snapshot())
    assert (msg.name, msg.version, msg.inference_count, msg.execution_count) == ("m", "3", 2, 3)
    assert (msg.inference_stats.success.count, msg.inference_stats.success.ns) == (2, 12_000)
    assert msg.inference_stats.queue.ns == 1_000 and msg.inference_stats.compute_infer.ns == 2_000
    assert [b.batch_size for b in msg.batch_stats] == [1, 4]
    assert (msg.batch_stats[1].compute_infer.count, msg.batch_stats[1].compute_infer.ns) == (2, 40)
    assert msg.last_inference > 0


def test_response_stats_per_index_follow_tritons_rules() -> None:
    stats = ModelStats()
    # request A: two responses with outputs, then the final flag alone
    stats.response_done(0, ResponseOutcome.SUCCESS, 100, 400, 500)  # infer 300, output 100
    stats.response_done(1, ResponseOutcome.SUCCESS, 500, 700, 750)
    stats.response_done(2, ResponseOutcome.EMPTY, 750, 0, 760)
    # request B: fails at its first response; request C: cancelled while waiting for its second
    stats.response_done(0, ResponseOutcome.FAIL, 0, 0, 50)
    stats.response_done(1, ResponseOutcome.CANCEL, 1_000, 0, 1_030)
    msg = model_statistics("m", 1, stats.snapshot())
    assert sorted(msg.response_stats) == ["0", "1", "2"]
    first, second, third = (msg.response_stats[k] for k in ("0", "1", "2"))
    assert (first.success.count, first.success.ns, first.fail.count, first.fail.ns) == (1, 400, 1, 50)
    assert (first.compute_infer.count, first.compute_infer.ns) == (2, 350)
    assert (first.compute_output.count, first.compute_output.ns) == (1, 100)
    assert (second.success.count, second.cancel.count, second.cancel.ns) == (1, 1, 30)
    assert second.compute_infer.count == 1  # a cancelled response computed nothing that counts
    assert (third.empty_response.count, third.empty_response.ns, third.compute_infer.ns) == (1, 10, 10)
    assert third.compute_output.count == 0


def test_no_response_stats_without_decoupled_responses() -> None:
    stats = ModelStats()
    stats.request_done(5_000, 1_000, (100, 2_000, 300))
    assert len(model_statistics("m", 1, stats.snapshot()).response_stats) == 0

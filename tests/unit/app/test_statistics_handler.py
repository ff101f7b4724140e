"""ModelStatistics messages built from a stats snapshot."""

from __future__ import annotations

from server.app.statistics_handler import model_statistics
from server.stats import ModelStats


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

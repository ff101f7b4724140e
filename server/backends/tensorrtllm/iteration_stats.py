"""The executor's IterationStats folded into the engine's SchedulerStats, so exporters read one shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from server.engine.stats import SchedulerStats


def _get(obj: Any, name: str, default: int = 0) -> int:
    value = getattr(obj, name, None) if obj is not None else None
    return int(value) if value is not None else default


class IterationStatsFolder:
    """Keeps the latest snapshot and the running totals over every iteration it is shown.

    Per-iteration fields (running, waiting, KV blocks) come from the newest IterationStats; totals
    (prompt and generated tokens) are summed over all of them, so `fold` must see each iteration once.
    The executor's KV reuse counters (`reused_blocks`, `missed_blocks`) are already cumulative.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = SchedulerStats()
        self._prompt_tokens = 0
        self._generation_tokens = 0

    def fold(self, iterations: Iterable[Any]) -> None:
        latest = None
        for it in iterations:
            ifb = getattr(it, "inflight_batching_stats", None)
            self._prompt_tokens += _get(ifb, "num_ctx_tokens")
            self._generation_tokens += _get(ifb, "num_gen_requests")
            latest = it
        if latest is not None:
            with self._lock:
                self._stats = self._snapshot(latest)

    def _snapshot(self, it: Any) -> SchedulerStats:
        kv = getattr(it, "kv_cache_stats", None)
        ifb = getattr(it, "inflight_batching_stats", None)
        reused = _get(kv, "reused_blocks")
        return SchedulerStats(
            num_running=_get(it, "num_active_requests"),
            num_waiting=_get(it, "num_queued_requests"),
            num_context=_get(ifb, "num_context_requests"),
            max_num_seqs=_get(it, "max_num_active_requests"),
            kv_blocks_total=_get(kv, "max_num_blocks"),
            kv_blocks_free=_get(kv, "free_num_blocks"),
            kv_blocks_used=_get(kv, "used_num_blocks"),
            kv_block_size=_get(kv, "tokens_per_block"),
            kv_blocks_reused_total=reused,
            prefix_cache_queries_total=reused + _get(kv, "missed_blocks"),
            prompt_tokens_total=self._prompt_tokens,
            generation_tokens_total=self._generation_tokens,
            step_counter=_get(it, "iter"),
            tokens_last_step=_get(ifb, "num_ctx_tokens") + _get(ifb, "num_gen_requests"),
            timestamp_s=time.time(),
        )

    def latest(self) -> SchedulerStats:
        with self._lock:
            return self._stats

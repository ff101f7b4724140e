"""Plain engine statistics, produced each step and read by exporters (Prometheus, ModelStatistics)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerStats:
    """A snapshot after one engine step; the TensorRT-LLM backend maps its iteration stats onto it too."""

    num_running: int = 0
    """Requests running (holding KV blocks, decoding or mid-prefill) after the last step."""
    num_waiting: int = 0
    """Requests queued for admission, preempted ones included."""
    num_context: int = 0
    """Requests that ran a prefill chunk in the last step (0 once the engine is idle)."""
    max_num_seqs: int = 0
    kv_blocks_total: int = 0
    kv_blocks_free: int = 0
    kv_blocks_used: int = 0
    kv_block_size: int = 0
    kv_blocks_reused_total: int = 0
    """Cumulative prompt blocks served from the prefix cache."""
    prefix_cache_queries_total: int = 0
    """Cumulative prompt blocks looked up in the prefix cache (hit rate = reused / queries)."""
    num_preemptions_total: int = 0
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    step_counter: int = 0
    tokens_last_step: int = 0
    """Tokens computed in the last step (0 once the engine is idle)."""
    timestamp_s: float = 0.0

    @property
    def kv_fraction_used(self) -> float:
        return self.kv_blocks_used / self.kv_blocks_total if self.kv_blocks_total else 0.0

"""plan_batch: Triton's batch-formation rules, checked on hand-built queues (no threads, no clocks)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import replace
from typing import Any

from server.scheduling.batch_plan import BatchingPolicy, ItemState, QueuedRequest, plan_batch
from server.scheduling.response_channel import ResponseChannel
from server.types import InferRequest

LOOP = asyncio.new_event_loop()  # channels only keep a reference to their loop; this one never runs
LOOP.close()


def queue(*sizes: int, key: Hashable = None, queued_at: int = 1000) -> deque[QueuedRequest]:
    out: deque[QueuedRequest] = deque()
    for i, size in enumerate(sizes):
        request = InferRequest("m", "1", str(i), {})
        request.times.queue_start_ns = queued_at
        item = QueuedRequest(request, ResponseChannel(LOOP), size, key)
        item.state = ItemState.QUEUED
        out.append(item)
    return out


def dynamic(**changes: Any) -> BatchingPolicy:
    return replace(BatchingPolicy(max_batch_size=8, dynamic=True), **changes)


def test_without_delay_everything_that_fits_runs_now() -> None:
    assert plan_batch(queue(1, 2, 3), dynamic(), now=1000).take == 3
    assert plan_batch(queue(4, 4, 1), dynamic(), now=1000).take == 2  # the third would exceed 8


def test_delay_waits_for_the_oldest_request_only_until_due() -> None:
    policy = dynamic(max_queue_delay_ns=500)
    waiting = plan_batch(queue(1, 1), policy, now=1200)
    assert (waiting.take, waiting.wait_ns) == (0, 300)
    assert plan_batch(queue(1, 1), policy, now=1500).take == 2
    assert plan_batch(queue(4, 4), policy, now=1000).take == 2  # full: no waiting


def test_largest_preferred_size_reached_runs_at_once() -> None:
    policy = dynamic(max_queue_delay_ns=10**9, preferred_batch_sizes=frozenset({2, 4}))
    assert plan_batch(queue(1, 1, 1, 1, 1), policy, now=1000).take == 4
    assert plan_batch(queue(1), policy, now=1000).take == 0


def test_different_shapes_end_the_batch() -> None:
    q = queue(1, 1)
    q.extend(queue(1, key=("X", (5,))))
    assert plan_batch(q, dynamic(max_queue_delay_ns=10**9), now=1000).take == 2


def test_non_dynamic_runs_one_request_and_skips_dropped_ones() -> None:
    q = queue(3, 3)
    q[0].state = ItemState.DROPPED
    plan = plan_batch(q, BatchingPolicy(max_batch_size=8), now=1000)
    assert plan.take == 1 and len(q) == 1 and q[0].request.id == "1"


def test_expired_requests_are_dropped_and_reported() -> None:
    q = queue(1, 1)
    q[0].deadline_ns = 900
    plan = plan_batch(q, dynamic(), now=1000)
    assert [it.request.id for it in plan.expired] == ["0"] and q[0].state is ItemState.DROPPED
    assert plan_batch(q, dynamic(), now=1000).take == 1

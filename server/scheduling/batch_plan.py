"""Which queued requests make the next batch: Triton's dynamic-batching rules applied to the queue head."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from server.repository.model_config import ModelConfig
from server.scheduling.response_channel import ResponseChannel
from server.types import InferRequest


@dataclass(frozen=True)
class BatchingPolicy:
    """What the batcher takes from a model config. Without `dynamic`, every request executes alone."""

    max_batch_size: int = 0
    dynamic: bool = False
    preferred_batch_sizes: frozenset[int] = frozenset()
    max_queue_delay_ns: int = 0
    max_queue_size: int = 0
    """0 means unbounded."""
    default_timeout_ns: int = 0
    allow_timeout_override: bool = False
    shape_sensitive: bool = False
    """Only requests whose non-batch input shapes agree share a batch (some input dim is variable)."""

    @classmethod
    def from_config(cls, config: ModelConfig) -> BatchingPolicy:
        db = config.dynamic_batching
        if db is None:
            return cls(max_batch_size=config.max_batch_size)
        qp = db.default_queue_policy
        reject = qp.timeout_action == "REJECT"  # DELAY never fails a request
        return cls(
            max_batch_size=config.max_batch_size,
            dynamic=config.max_batch_size > 0,
            preferred_batch_sizes=frozenset(db.preferred_batch_size),
            max_queue_delay_ns=db.max_queue_delay_microseconds * 1000,
            max_queue_size=qp.max_queue_size,
            default_timeout_ns=qp.default_timeout_microseconds * 1000 if reject else 0,
            allow_timeout_override=qp.allow_timeout_override and reject,
            shape_sensitive=any(-1 in t.dims or t.optional for t in config.inputs),
        )


    def shape_of(self, request: InferRequest) -> tuple[int, Hashable]:
        """The request's batch size (its leading dim when batching) and its batch-compatibility key."""
        if not self.max_batch_size:
            return 1, None
        size = 1
        for t in request.inputs.values():
            size = t.data.shape[0] if t.data.ndim else 1
            break
        if not self.shape_sensitive:
            return size, None
        return size, tuple((name, t.data.shape[1:]) for name, t in request.inputs.items())

    def timeout_ns(self, request: InferRequest) -> int:
        """How long the request may wait in the queue (0: forever): its `timeout` parameter (us) where
        the policy allows overrides, else the default."""
        if self.allow_timeout_override:
            override = request.parameters.get("timeout")
            if isinstance(override, int) and not isinstance(override, bool) and override > 0:
                return override * 1000
        return self.default_timeout_ns


class ItemState(enum.Enum):
    PENDING = "pending"  # submitted on the loop, not yet handed to the instance threads
    QUEUED = "queued"
    RUNNING = "running"
    DROPPED = "dropped"  # cancelled, timed out or shut out while waiting: already answered


class QueuedRequest:
    """A request waiting for an instance, with what batching needs to know about it."""

    __slots__ = ("channel", "deadline_ns", "key", "request", "size", "state")

    def __init__(self, request: InferRequest, channel: ResponseChannel, size: int, key: Hashable) -> None:
        self.request = request
        self.channel = channel
        self.size = size
        self.key = key
        self.deadline_ns = 0
        self.state = ItemState.PENDING


@dataclass
class Plan:
    take: int = 0
    """How many QUEUED requests from the head to run now; 0 means wait."""
    wait_ns: int = 0
    """How long to wait for more requests before running what is there (0: until something arrives)."""
    expired: list[QueuedRequest] = field(default_factory=list)
    """Requests whose queue timeout passed; marked DROPPED, the caller answers them."""


def plan_batch(queue: deque[QueuedRequest], policy: BatchingPolicy, now: int) -> Plan:
    """Decide from the queue head: run a batch now, or wait for more requests (and for how long).

    A batch grows until it reaches max_batch_size or meets a request that does not fit or has other
    shapes; then it runs at once. Otherwise the largest preferred size reached runs at once, and
    anything else waits until the oldest request has waited max_queue_delay.
    """
    while queue and queue[0].state is not ItemState.QUEUED:
        queue.popleft()
    plan = Plan()
    count = total = best = 0
    first: QueuedRequest | None = None
    full = False
    for item in queue:
        if item.state is not ItemState.QUEUED:
            continue
        if item.deadline_ns and now >= item.deadline_ns:
            item.state = ItemState.DROPPED
            plan.expired.append(item)
            continue
        if first is None:
            first = item
        elif item.key != first.key or total + item.size > policy.max_batch_size:
            full = True
            break
        count += 1
        total += item.size
        if not policy.dynamic or total >= policy.max_batch_size:
            full = True
            break
        if total in policy.preferred_batch_sizes:
            best = count
    if first is None or plan.expired:
        return plan
    if full or not policy.max_queue_delay_ns:
        plan.take = count
    elif best:
        plan.take = best
    else:
        due = first.request.times.queue_start_ns + policy.max_queue_delay_ns
        if now >= due:
            plan.take = count
        else:
            plan.wait_ns = due - now
    return plan

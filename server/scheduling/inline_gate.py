"""InlineGate: whether a cheap single-instance model may execute on the event loop instead of its thread.

An exception to DESIGN.md decision 6 ("model work never runs on the loop"), for throughput: handing a
request to a worker thread and its response back costs a few hundred microseconds of GIL hand-offs, far
more than a tiny model's execute (docs/PERFORMANCE.md, gRPC section). The gate opens only after the first
executions, all on the worker thread, show the model is cheap, and it closes for good after any slow
execute on the loop (a model that blocks, or simply is not as cheap as it looked), or once executes on
the loop are slow on average. Pauses the model is not to blame for do not count: garbage collection,
and executes during which the OS preempted the thread (a busy machine); the one-off limit also sits well
above a GIL hand-off (5 ms switch interval), so noise alone does not close the gate. Preemptions cost two
system calls to count, so only executes after a suspiciously slow one are counted: a slow execute
nobody counted closes nothing, it makes the gate count the next ones, and a counted slow one decides.
"""

from __future__ import annotations

import gc
import logging
import resource
import time
from collections.abc import Mapping
from typing import Any

from server.errors import ConfigError
from server.repository.model_config import ModelConfig

log = logging.getLogger(__name__)

INLINE_PARAMETER = "inline_execution"
"""config.pbtxt `parameters` key: "auto"/"true" let the gate decide, "false" keeps every execute on the
model's worker thread. The default is per backend: "auto" for onnxruntime (pure compute), "false" for
Python models, whose code may block or call asyncio.run and so must opt in."""
_VALUES = {"auto": True, "true": True, "false": False}

WARMUP_EXECUTES = 16
"""Executions that run on the worker thread before the gate may open (they seed the average)."""
EWMA_LIMIT_NS = 200_000
"""The gate is open while the average execute cost per request stays under this."""
VALVE_NS = 20_000_000
"""One execute on the loop taking longer than this (wall time) closes the gate for good."""
WALL_LIMIT_NS = 1_000_000
"""Executes on the loop averaging more than this per request (wall time) close the gate for good."""
_ALPHA = 0.125
_WALL_ALPHA = 0.0625


class GcClock:
    """Total time the process spent in cyclic garbage collection: a gen-2 pass takes tens of ms, which
    would land in whatever execute is running, so execute times are measured without it."""

    def __init__(self) -> None:
        self.total_ns = 0
        self._start_ns = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start_ns = time.monotonic_ns()
        else:
            self.total_ns += time.monotonic_ns() - self._start_ns


GC_CLOCK = GcClock()
_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)  # Linux


def _preemptions() -> int:
    """Involuntary context switches of the calling thread so far (0 where the OS does not say)."""
    return resource.getrusage(_RUSAGE_THREAD).ru_nivcsw if _RUSAGE_THREAD is not None else 0


def inline_requested(parameters: Mapping[str, str], model: str, default: str = "auto") -> bool:
    """The model's `inline_execution` parameter (absent: `default`). Raises ConfigError for other values."""
    text = parameters.get(INLINE_PARAMETER, default)
    allowed = _VALUES.get(text.strip().lower())
    if allowed is None:
        raise ConfigError(
            f"parameter {INLINE_PARAMETER} of model '{model}' must be one of {sorted(_VALUES)}, got {text!r}"
        )
    return allowed


def inline_gate(
    config: ModelConfig, instances: int, can_inline: bool = True, default: str = "auto"
) -> InlineGate | None:
    """A gate for a model that may run inline, else None.

    Only a single-instance model that the batcher would run at once anyway (no max_queue_delay) and
    whose backend allows it (`can_inline`: never a decoupled or coroutine Python model) qualifies.
    """
    if not inline_requested(config.parameters, config.name, default) or not can_inline or instances != 1:
        return None
    db = config.dynamic_batching
    if db is not None and db.max_queue_delay_microseconds > 0 and config.max_batch_size > 0:
        return None
    return InlineGate(config.name)


class InlineGate:
    """Measures a model's executions and says whether the next one may run on the event loop.

    `begin` and `end` bracket every execute (worker or loop; never two at once: single instance).
    """

    def __init__(
        self,
        model: str,
        warmup: int = WARMUP_EXECUTES,
        ewma_limit_ns: int = EWMA_LIMIT_NS,
        valve_ns: int = VALVE_NS,
        wall_limit_ns: int = WALL_LIMIT_NS,
    ) -> None:
        self.model = model
        self._warmup = warmup
        self._limit_ns = ewma_limit_ns
        self._valve_ns = valve_ns
        self._wall_limit_ns = wall_limit_ns
        self._samples = 0
        self._ewma_ns = 0.0
        self._wall_ewma_ns = 0.0
        if GC_CLOCK not in gc.callbacks:
            gc.callbacks.append(GC_CLOCK)
        self.closed = False
        """True once an execute on the loop was slow: every later execute stays on the worker thread."""
        self._verifying = False  # an uncounted execute on the loop was slow: count preemptions of the next

    @property
    def open(self) -> bool:
        return not self.closed and self._samples >= self._warmup and self._ewma_ns < self._limit_ns

    def begin(self, inline: bool) -> tuple[int, int]:
        """Start measuring one execute; pass the result to `end` with the execute's wall-clock bounds."""
        # CPU time only on worker threads: on the loop the wall time is what counts (and is cheaper);
        # preemptions only while verifying a slow execute (-1: not counted)
        if not inline:
            return GC_CLOCK.total_ns, time.thread_time_ns()
        return GC_CLOCK.total_ns, _preemptions() if self._verifying else -1

    def end(self, mark: tuple[int, int], start_ns: int, end_ns: int, requests: int, inline: bool) -> None:
        """Finish measuring an execute of `requests` requests that ran from `start_ns` to `end_ns`
        (time.monotonic_ns), begun with `begin(inline)`."""
        gc_ns = GC_CLOCK.total_ns - mark[0]
        wall = end_ns - start_ns - gc_ns
        if inline:
            preempted = None if mark[1] < 0 else _preemptions() != mark[1]
            self.record(wall, wall, requests, True, preempted)
        else:
            cpu = time.thread_time_ns() - mark[1] - gc_ns
            self.record(cpu if cpu > 0 else 0, wall, requests, False)

    def record(
        self, cost_ns: int, wall_ns: int, requests: int, inline: bool, preempted: bool | None = False
    ) -> None:
        """One execute's cost and wall time (without garbage collection pauses).

        The cost per request feeds the average that opens the gate: on a worker thread it is the
        thread's CPU time (its wall time also counts waits for the GIL, which say nothing about the
        model); on the loop it is the wall time, what the loop lost. Executes on the loop also work
        the valve, unless the OS preempted the thread meanwhile (a busy machine, not a slow model);
        `preempted` None: nobody counted, so a slow execute only makes the gate count the next ones.
        """
        self._samples += 1
        requests = requests or 1
        cost = cost_ns / requests
        if self._samples == 1:
            return  # a model's first execute often sets up lazy state: not a fair sample
        if self._samples == 2:
            self._ewma_ns = cost
        else:
            self._ewma_ns += (cost - self._ewma_ns) * _ALPHA
        if not inline or self.closed or preempted:
            return
        per_request = wall_ns / requests
        ewma = self._wall_ewma_ns
        ewma = per_request if not ewma else ewma + (per_request - ewma) * _WALL_ALPHA
        slow = wall_ns > self._valve_ns or ewma > self._wall_limit_ns
        if slow and preempted is None:
            self._verifying = True  # not counted: the next executes are, and decide
            return
        self._wall_ewma_ns = ewma
        self._verifying = False  # counted: a fast execute clears the suspicion, a slow one closes
        if wall_ns > self._valve_ns:
            self._close(f"an execute on the event loop took {wall_ns / 1e6:.1f} ms")
        elif ewma > self._wall_limit_ns:
            self._close(f"executes on the event loop took {ewma / 1e6:.1f} ms on average")

    def _close(self, why: str) -> None:
        self.closed = True
        log.warning("model '%s': %s; its executes run on the worker thread from now on", self.model, why)

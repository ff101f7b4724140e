"""Iteration-level scheduling: which requests compute which tokens in the next engine step."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.engine.admission import check_request
from server.engine.block_manager import BlockManager
from server.engine.config import EngineConfig
from server.engine.outputs import RequestOutput
from server.engine.request import Request, RequestStatus
from server.engine.runner import BatchItem, StepOutput
from server.engine.sampling_params import SamplingParams
from server.engine.stats import SchedulerStats


@dataclass
class SchedulerOutput:
    """One step's plan, handed to the runner and then back to update_from_output()."""

    # What the runner computes, in order: running requests (oldest first), then newly admitted ones.
    items: list[BatchItem] = field(default_factory=list)
    # The request behind each item (parallel to `items`).
    requests: list[Request] = field(default_factory=list)
    # Tokens whose KV this step computes (prompt chunks plus one per decode).
    num_scheduled_tokens: int = 0
    # Requests that compute prompt tokens or several tokens (first prefill, chunk, recompute).
    num_prefill_requests: int = 0
    # Requests preempted while building this step; they wait to be recomputed.
    preempted_request_ids: list[str] = field(default_factory=list)


class Scheduler:
    """Owns the waiting and running queues and the block manager; called only from the engine thread.

    Each step: schedule() -> runner.execute(output.items) -> update_from_output(). Prefilling and
    decoding requests share a step; a prompt longer than the step's token budget is prefilled in chunks.
    When blocks run out the newest running request is preempted: its blocks are freed and it later
    recomputes prompt + generated tokens, then continues exactly where it stopped.
    """

    def __init__(self, config: EngineConfig, vocab_size: int, eos_token_ids: Sequence[int] = ()) -> None:
        self.config = config
        self.vocab_size = vocab_size
        self.eos_token_ids = tuple(eos_token_ids)
        self.block_manager = BlockManager(config.num_blocks, config.block_size, config.enable_prefix_caching)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.requests: dict[str, Request] = {}
        self._num_preemptions = 0
        self._prompt_tokens = 0
        self._generation_tokens = 0
        self._steps = 0
        self._last = SchedulerOutput()

    # ---- intake ------------------------------------------------------------------------------------

    def check_request(self, prompt_token_ids: Sequence[int], sampling: SamplingParams) -> list[int]:
        """Validate a new request (see admission.check_request); reads only immutable state."""
        return check_request(prompt_token_ids, sampling, self.config, self.vocab_size)

    def make_request(
        self, request_id: str, prompt_token_ids: Sequence[int], sampling: SamplingParams
    ) -> Request:
        """A validated Request carrying the model's eos ids. Raises InvalidInput / ResourceExhausted."""
        prompt = self.check_request(prompt_token_ids, sampling)
        return Request(request_id, prompt, sampling, self.eos_token_ids)

    def add_request(self, request: Request) -> None:
        """Queue a request built by make_request(); a live duplicate id is the caller's bug."""
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in the scheduler")
        self.requests[request.request_id] = request
        self.waiting.append(request)

    def has_requests(self) -> bool:
        return bool(self.requests)

    # ---- one step ----------------------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        """Plan the next step: running requests first (oldest first), then admit waiting ones unless
        this step had to preempt."""
        out = SchedulerOutput()
        budget = self.config.max_num_batched_tokens
        running = self.running
        i = 0
        while i < len(running) and budget > 0:
            request = running[i]
            if not self._make_room(request, out):
                break  # it was the newest running request and preempted itself
            budget -= self._add_item(out, request, budget)
            i += 1
        if not out.preempted_request_ids:
            self._admit(out, budget)
        self._last = out
        return out

    def _make_room(self, request: Request, out: SchedulerOutput) -> bool:
        """Give `request` a slot for its next token, preempting the newest running requests if needed."""
        while not self.block_manager.append_slot(request):
            victim = self.running.pop()
            self._preempt(victim, out)
            if victim is request:
                return False
        return True

    def _preempt(self, request: Request, out: SchedulerOutput) -> None:
        self.block_manager.free(request.request_id)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        # Front of the queue; preempted oldest-last, so the oldest resumes first.
        self.waiting.appendleft(request)
        self._num_preemptions += 1
        out.preempted_request_ids.append(request.request_id)

    def _admit(self, out: SchedulerOutput, budget: int) -> None:
        """Admit waiting requests in order while the token budget, max_num_seqs and the pool allow."""
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            request = self.waiting[0]
            num_cached = self.block_manager.allocate(request)
            if num_cached is None:
                break  # first come, first served: nobody overtakes the head of the queue
            self.waiting.popleft()
            if request.status is RequestStatus.WAITING:
                request.num_cached_tokens = num_cached
                self._prompt_tokens += request.num_prompt_tokens
            request.num_computed_tokens = num_cached
            request.status = RequestStatus.RUNNING
            self.running.append(request)
            budget -= self._add_item(out, request, budget)

    def _add_item(self, out: SchedulerOutput, request: Request, budget: int) -> int:
        """Schedule the request's next chunk (all its uncomputed tokens, up to `budget`)."""
        start = request.num_computed_tokens
        num_tokens = len(request.token_ids)
        end = min(num_tokens, start + budget)
        table = self.block_manager.block_table(request.request_id)
        num_table_blocks = -(-end // self.config.block_size)
        if num_table_blocks < len(table):
            table = table[:num_table_blocks]  # mid-prefill: show only the blocks this chunk reaches
        # Positional: this runs once per request per step, and keywords cost measurably more.
        item = BatchItem(
            request.request_id,
            request.token_ids[start:end],
            start,
            table,
            end == num_tokens,
            request.sampling,
            request.num_prompt_tokens,
            request.output_token_ids,
            request.token_ids,  # prompt_token_ids: the runner reads its first prompt_len entries
        )
        out.items.append(item)
        out.requests.append(request)
        n = end - start
        out.num_scheduled_tokens += n
        if n > 1 or start < request.num_prompt_tokens:
            out.num_prefill_requests += 1
        return n

    def update_from_output(
        self, output: SchedulerOutput, step_outputs: Sequence[StepOutput | None]
    ) -> list[RequestOutput]:
        """Advance each scheduled request by what the runner computed and sampled.

        Returns one output per request that sampled (or failed) this step; a finished request's output
        has `finished` set and its blocks are already freed.
        """
        if len(step_outputs) != len(output.items):
            raise RuntimeError(f"runner returned {len(step_outputs)} outputs for {len(output.items)} items")
        results: list[RequestOutput] = []
        any_finished = False
        cache = self.block_manager.cache_computed
        for request, item, step in zip(output.requests, output.items, step_outputs, strict=True):
            if request.status is not RequestStatus.RUNNING:
                continue  # finished or aborted since schedule() (not reachable from the engine loop)
            request.num_computed_tokens += len(item.token_ids)
            cache(request)
            if not item.sample:
                continue
            status = self._apply_sample(request, step)
            new_ids: tuple[int, ...] = ()
            logprobs: tuple[float, ...] | None = None
            if step is not None and status is not RequestStatus.FINISHED_ERROR:
                new_ids = (step.token_id,)
                if request.sampling.logprobs and step.logprob is not None:
                    logprobs = (step.logprob,)
            if status is not None:
                self._finish(request, status)
                any_finished = True
            results.append(request.output(new_ids, logprobs))
        if any_finished:
            self.running = [r for r in self.running if r.status is RequestStatus.RUNNING]
        self._steps += 1
        return results

    def _apply_sample(self, request: Request, step: StepOutput | None) -> RequestStatus | None:
        if step is None:
            request.error = "the model runner returned no token for a sampled item"
            return RequestStatus.FINISHED_ERROR
        if step.error is not None:
            request.error = step.error
            return RequestStatus.FINISHED_ERROR
        self._generation_tokens += 1
        return request.append_output(step.token_id)

    # ---- finishing from outside the step -----------------------------------------------------------

    def finish_request(
        self, request_id: str, status: RequestStatus, error: str | None = None
    ) -> RequestOutput | None:
        """End a live request now (abort, stop string, failure) and free its blocks; returns its final
        output, or None if the id is not live (already finished: nothing more is sent)."""
        assert status.finished, status
        request = self.requests.get(request_id)
        if request is None:
            return None
        if request.status is RequestStatus.RUNNING:
            self.running.remove(request)
        else:
            self.waiting.remove(request)
        request.error = error
        self._finish(request, status)
        return request.output()

    def abort(self, request_id: str) -> RequestOutput | None:
        return self.finish_request(request_id, RequestStatus.FINISHED_ABORTED)

    def finish_all(self, status: RequestStatus, error: str | None) -> list[RequestOutput]:
        """End every live request with `status` (shutdown, engine crash) without trusting step state."""
        outputs = []
        for request in list(self.requests.values()):
            request.status = status
            request.error = error
            outputs.append(request.output())
        for request_id in self.requests:
            self.block_manager.free(request_id)
        self.requests.clear()
        self.waiting.clear()
        self.running.clear()
        return outputs

    def _finish(self, request: Request, status: RequestStatus) -> None:
        request.status = status
        self.block_manager.free(request.request_id)
        del self.requests[request.request_id]

    # ---- observation -------------------------------------------------------------------------------

    def make_stats(self) -> SchedulerStats:
        bm = self.block_manager
        last = self._last
        active = bool(self.requests)
        return SchedulerStats(
            num_running=len(self.running),
            num_waiting=len(self.waiting),
            num_context=last.num_prefill_requests if active else 0,
            max_num_seqs=self.config.max_num_seqs,
            kv_blocks_total=bm.num_blocks,
            kv_blocks_free=bm.num_free_blocks,
            kv_blocks_used=bm.num_used_blocks,
            kv_block_size=bm.block_size,
            kv_blocks_reused_total=bm.num_reused_blocks_total,
            prefix_cache_queries_total=bm.num_queried_blocks_total,
            num_preemptions_total=self._num_preemptions,
            prompt_tokens_total=self._prompt_tokens,
            generation_tokens_total=self._generation_tokens,
            step_counter=self._steps,
            tokens_last_step=last.num_scheduled_tokens if active else 0,
            timestamp_s=time.time(),
        )

    def check_integrity(self) -> None:
        """The block manager's invariants plus queue/state agreement; raises AssertionError."""
        self.block_manager.check_integrity()
        bm = self.block_manager
        for r in self.running:
            if r.status is not RequestStatus.RUNNING or not bm.has_blocks(r.request_id):
                raise AssertionError(f"running {r} is not RUNNING or holds no blocks")
            if len(bm.block_table(r.request_id)) * bm.block_size < r.num_tokens - 1:
                raise AssertionError(f"{r}: block table does not cover the tokens it holds")
            if not 0 <= r.num_computed_tokens <= r.num_tokens:
                raise AssertionError(f"{r}: computed tokens outside [0, {r.num_tokens}]")
        for r in self.waiting:
            if r.status.finished or r.status is RequestStatus.RUNNING or bm.has_blocks(r.request_id):
                raise AssertionError(f"waiting {r} is in state {r.status.name} or holds blocks")
            if r.num_computed_tokens:
                raise AssertionError(f"waiting {r} claims computed tokens")
        live = [r.request_id for r in self.running] + [r.request_id for r in self.waiting]
        if sorted(live) != sorted(self.requests):
            raise AssertionError(f"queues {sorted(live)} disagree with the requests {sorted(self.requests)}")

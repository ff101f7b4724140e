"""A minimal stand-in scheduler for runner tests: allocates block tables and steps requests to completion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from server.engine.runner import BatchItem, ModelRunner, StepOutput
from server.engine.sampling_params import SamplingParams

GREEDY = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)


@dataclass
class DriverSeq:
    request_id: str
    prompt: list[int]
    sampling: SamplingParams
    arrival_step: int = 0
    outputs: list[int] = field(default_factory=list)
    step_outputs: list[StepOutput] = field(default_factory=list)
    computed: int = 0
    table: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.outputs

    @property
    def done(self) -> bool:
        return len(self.outputs) >= self.sampling.max_tokens or any(o.error for o in self.step_outputs)


class PagedDriver:
    """Every step: one token for each decoding sequence, then prompt chunks up to `token_budget`.

    Sequences join at their `arrival_step`, so prefill chunks share steps with other sequences' decodes.
    """

    def __init__(self, runner: ModelRunner, *, token_budget: int = 64, max_chunk: int | None = None) -> None:
        self.runner = runner
        self.token_budget = token_budget
        self.max_chunk = max_chunk
        self.free = list(range(runner.num_blocks))
        self.steps: list[list[BatchItem]] = []

    def run(self, seqs: Sequence[DriverSeq]) -> list[DriverSeq]:
        pending = list(seqs)
        step = 0
        while any(not s.done for s in pending):
            active = [s for s in pending if not s.done and s.arrival_step <= step]
            items = self._items(active)
            if items:
                self._apply(active, items, self.runner.execute(items))
            for s in pending:
                if s.done and s.table:
                    self.free += s.table
                    s.table = []
                    self.runner.release(s.request_id)
            step += 1
        return list(seqs)

    def _items(self, active: list[DriverSeq]) -> list[BatchItem]:
        budget = self.token_budget
        items = []
        for s in sorted(active, key=lambda s: s.computed < len(s.tokens) - 1):
            remaining = len(s.tokens) - s.computed
            n = min(remaining, budget, self.max_chunk or remaining)
            if n <= 0:
                continue
            budget -= n
            self._reserve(s, s.computed + n)
            items.append(
                BatchItem(
                    request_id=s.request_id,
                    token_ids=s.tokens[s.computed : s.computed + n],
                    start_pos=s.computed,
                    block_table=list(s.table),
                    sample=s.computed + n == len(s.tokens),
                    sampling=s.sampling,
                    prompt_len=len(s.prompt),
                    output_token_ids=list(s.outputs),
                    prompt_token_ids=s.prompt,
                )
            )
        self.steps.append(items)
        return items

    def _reserve(self, s: DriverSeq, num_tokens: int) -> None:
        bs = self.runner.block_size
        while len(s.table) * bs < num_tokens:
            if not self.free:
                raise RuntimeError("the test driver ran out of KV blocks: give the runner more")
            s.table.append(self.free.pop())

    def _apply(
        self, active: list[DriverSeq], items: list[BatchItem], results: list[StepOutput | None]
    ) -> None:
        by_id = {s.request_id: s for s in active}
        for item, result in zip(items, results, strict=True):
            s = by_id[item.request_id]
            s.computed = item.start_pos + len(item.token_ids)
            assert (result is not None) == item.sample
            if result is not None:
                s.step_outputs.append(result)
                if result.error is None:
                    s.outputs.append(result.token_id)


def greedy_seqs(
    prompts: Sequence[Sequence[int]], max_tokens: int, arrivals: Sequence[int] = ()
) -> list[DriverSeq]:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    return [
        DriverSeq(f"r{i}", list(p), params, arrival_step=arrivals[i] if arrivals else 0)
        for i, p in enumerate(prompts)
    ]

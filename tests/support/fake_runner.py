"""A deterministic ModelRunner for engine tests: a simulated KV store read back through block tables."""

from __future__ import annotations

import threading
import zlib
from array import array
from collections.abc import Callable, Sequence

from server.engine.runner import BatchItem, ModelRunner, StepOutput


class FakeKVError(AssertionError):
    """The engine handed the runner a block table that does not match what was written."""


def next_token(token_ids: Sequence[int], vocab_size: int) -> int:
    """The token the fake model emits after `token_ids`; never 0 (the default eos id)."""
    return 1 + zlib.crc32(array("q", token_ids).tobytes()) % (vocab_size - 1)


def reference_generate(prompt: Sequence[int], max_tokens: int, vocab_size: int) -> list[int]:
    """What a correct engine produces for `prompt` with the fake model (no eos, no stops)."""
    tokens = list(prompt)
    for _ in range(max_tokens):
        tokens.append(next_token(tokens, vocab_size))
    return tokens[len(prompt) :]


def fake_logprob(token_id: int) -> float:
    return -(token_id % 7) / 10.0


class FakeRunner(ModelRunner):
    """Writes (token, position) into the physical slot the block table names, and samples from what it
    reads back for positions 0..end, so a wrong table, a missing prefix or a stale block changes the
    output or raises FakeKVError.

    Scripted behaviour for tests: `script[request_id]` forces the k-th output token, `fail_sampling`
    maps a request id to the output index whose sampling fails, `crash_at_step` raises from execute,
    `before_execute` runs first in every step (a hook to block or observe).
    """

    def __init__(
        self,
        *,
        num_blocks: int = 64,
        block_size: int = 16,
        max_model_len: int = 1024,
        vocab_size: int = 1000,
        eos_token_ids: tuple[int, ...] = (0,),
    ) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.max_model_len = max_model_len
        self.vocab_size = vocab_size
        self.eos_token_ids = eos_token_ids
        self.kv: list[tuple[int, int] | None] = [None] * (num_blocks * block_size)
        self.script: dict[str, list[int]] = {}
        self.fail_sampling: dict[str, int] = {}
        self.crash_at_step: int | None = None
        self.before_execute: Callable[[Sequence[BatchItem]], None] | None = None
        self.steps: list[list[tuple[str, int, int, bool]]] = []
        """Per step: (request_id, start_pos, number of tokens computed, sampled)."""
        self.items: list[Sequence[BatchItem]] = []
        self.released: list[str] = []
        self.thread_names: set[str] = set()
        self._lock = threading.Lock()

    def execute(self, items: Sequence[BatchItem]) -> list[StepOutput | None]:
        self.thread_names.add(threading.current_thread().name)
        if self.before_execute is not None:
            self.before_execute(items)
        if self.crash_at_step is not None and len(self.steps) >= self.crash_at_step:
            raise RuntimeError("simulated device failure")
        self.steps.append([(i.request_id, i.start_pos, len(i.token_ids), i.sample) for i in items])
        self.items.append(items)
        for item in items:
            self._write(item)
        return [self._sample(item) if item.sample else None for item in items]

    def release(self, request_id: str) -> None:
        with self._lock:
            self.released.append(request_id)

    def _slot(self, item: BatchItem, pos: int) -> int:
        block = item.block_table[pos // self.block_size]
        if not 0 <= block < self.num_blocks:
            raise FakeKVError(f"{item.request_id}: block id {block} outside the pool")
        return block * self.block_size + pos % self.block_size

    def _write(self, item: BatchItem) -> None:
        end = item.start_pos + len(item.token_ids)
        expected_blocks = -(-end // self.block_size)
        if len(item.block_table) != expected_blocks:
            raise FakeKVError(
                f"{item.request_id}: block table of {len(item.block_table)} blocks for positions 0..{end - 1}"
                f" (expected {expected_blocks})"
            )
        for offset, token in enumerate(item.token_ids):
            pos = item.start_pos + offset
            self.kv[self._slot(item, pos)] = (token, pos)

    def _sample(self, item: BatchItem) -> StepOutput:
        end = item.start_pos + len(item.token_ids)
        tokens = []
        for pos in range(end):
            value = self.kv[self._slot(item, pos)]
            if value is None or value[1] != pos:
                raise FakeKVError(f"{item.request_id}: position {pos} reads a slot holding {value}")
            tokens.append(value[0])
        k = len(item.output_token_ids)
        if self.fail_sampling.get(item.request_id) == k:
            return StepOutput(token_id=-1, error=f"sampling failed for {item.request_id}: logits are NaN")
        forced = self.script.get(item.request_id)
        token = forced[k] if forced is not None and k < len(forced) else next_token(tokens, self.vocab_size)
        return StepOutput(token_id=token, logprob=fake_logprob(token))

"""One engine step's batch as tensors: flat token ids, attention metadata, the rows that sample."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

from server.backends.pytorch.attention_metadata import AttentionMetadata, build_attention_metadata
from server.engine.runner import BatchItem


@dataclass(frozen=True)
class StepLayout:
    """What does not change from step to step: the pool geometry and the model's vocabulary."""

    block_size: int
    num_blocks: int
    vocab_size: int
    windows: tuple[int | None, ...]
    device: torch.device
    padded_groups: bool
    """Build the torch attention path's padded groups (not needed by the native kernel)."""


@dataclass(frozen=True)
class StepInputs:
    input_ids: torch.Tensor
    """[tokens] every item's tokens, concatenated in item order."""
    meta: AttentionMetadata
    logits_rows: torch.Tensor
    """[len(sampled)] the row of each sampling item's last token."""
    sampled: list[int]
    """Indices of the items that sample."""
    invalid: dict[int, str]
    """Item index -> why its tokens are invalid (replaced by id 0 so the step can run)."""


def build_step_inputs(items: Sequence[BatchItem], layout: StepLayout) -> StepInputs:
    """Raises RuntimeError for a block table that breaks the engine's contract (an internal bug)."""
    n, bs, null = len(items), layout.block_size, layout.num_blocks
    lengths = np.fromiter((len(it.token_ids) for it in items), np.int64, n)
    starts = np.fromiter((it.start_pos for it in items), np.int64, n)
    tokens = np.fromiter(chain.from_iterable(it.token_ids for it in items), np.int64, int(lengths.sum()))
    meta = build_attention_metadata(
        lengths=lengths,
        starts=starts,
        block_tables=_block_tables(items, starts + lengths, bs, null),
        block_size=bs,
        null_block=null,
        windows=layout.windows,
        device=layout.device,
        padded_groups=layout.padded_groups,
    )
    invalid = _replace_invalid(tokens, lengths, layout.vocab_size)
    sampled = [i for i, it in enumerate(items) if it.sample]
    rows = np.cumsum(lengths)[sampled] - 1
    return StepInputs(
        input_ids=torch.from_numpy(tokens).to(layout.device),
        meta=meta,
        logits_rows=torch.from_numpy(rows.astype(np.int64)).to(layout.device),
        sampled=sampled,
        invalid=invalid,
    )


def _block_tables(items: Sequence[BatchItem], ends: np.ndarray, block_size: int, null: int) -> np.ndarray:
    """[items, blocks of the longest] tables cut to the blocks each item's positions use."""
    needed = (ends + block_size - 1) // block_size
    tables = np.full((len(items), int(needed.max())), null, np.int64)
    for row, item in enumerate(items):
        count = int(needed[row])
        if len(item.block_table) < count:
            raise RuntimeError(
                f"request {item.request_id}: block table has {len(item.block_table)} blocks, "
                f"positions up to {ends[row] - 1} need {count}"
            )
        tables[row, :count] = item.block_table[:count]
    used = tables[np.arange(tables.shape[1])[None, :] < needed[:, None]]
    if used.min() < 0 or used.max() >= null:
        raise RuntimeError(f"block table ids outside [0, {null}): min {used.min()}, max {used.max()}")
    return tables


def _replace_invalid(tokens: np.ndarray, lengths: np.ndarray, vocab_size: int) -> dict[int, str]:
    """Out-of-vocabulary ids fail their own request, never the step: they are reported and zeroed."""
    bad = (tokens < 0) | (tokens >= vocab_size)
    if not bad.any():
        return {}
    item_of_token = np.repeat(np.arange(len(lengths)), lengths)
    reasons = {}
    for row in np.unique(item_of_token[bad]):
        first = int(tokens[bad & (item_of_token == row)][0])
        reasons[int(row)] = f"token id {first} is outside the vocabulary [0, {vocab_size})"
    tokens[bad] = 0
    return reasons

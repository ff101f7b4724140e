"""Per-step attention inputs built once from the batch and shared by every layer: slots, gathers, masks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

DENSE_PREFILL_MIN = 64
"""On the native-kernel path, a prompt this long with no cached context attends through torch SDPA over
its own K/V instead: SDPA's blocked flash attention is about twice the paged kernel's speed from a few
hundred tokens on, and a fresh prompt needs nothing from the pool."""


@dataclass(frozen=True)
class AttentionGroup:
    """Sequences attended together in one padded shape [num_seqs, q_len] x [num_seqs, kv_len].

    A step has at most two: single-token queries (decodes) and multi-token prompt chunks.
    """

    num_seqs: int
    q_len: int
    """Queries per sequence, padded to the longest."""
    kv_len: int
    """Keys per sequence, padded to whole blocks of the longest context."""
    block_ids: torch.Tensor
    """[num_seqs * kv_len / block_size] KV blocks to gather, row-major; padding is the null block."""
    masks: dict[int | None, torch.Tensor]
    """Sliding window (None: full attention) -> bool [num_seqs, 1, q_len, kv_len], True = attend."""
    q_index: torch.Tensor | None
    """[num_seqs * q_len] step-token rows feeding the padded queries; None: all rows, in order."""
    valid_index: torch.Tensor | None
    """Rows of the padded [num_seqs * q_len] output that are real queries; None: all of them."""
    token_rows: torch.Tensor | None
    """Step-token rows the valid outputs belong to; None: all rows, in order."""


@dataclass(frozen=True)
class SequenceLayout:
    """Where each sequence's queries sit in the flat step and what they attend to (the kernel's view)."""

    q_starts: torch.Tensor
    """[n] int64 first step-token row of each sequence."""
    q_lens: torch.Tensor
    """[n] int64 query tokens of each sequence in this step."""
    ctx_lens: torch.Tensor
    """[n] int64 context length after this step: cached tokens + q_lens."""
    tables: torch.Tensor
    """[n, width] int64 block tables, padded with the null block."""


@dataclass(frozen=True)
class AttentionMetadata:
    slot_mapping: torch.Tensor
    """[tokens] flat KV slot (block * block_size + offset) each step token's K and V are written to."""
    positions: torch.Tensor
    """[tokens] each step token's position in its sequence (rotary embeddings use it)."""
    sequences: SequenceLayout | None
    """The native kernel's sequences: all of them, less `dense_spans`; None when nothing is left."""
    groups: tuple[AttentionGroup, ...]
    """Padded groups for the torch path; empty when only the native kernel reads the metadata."""
    num_tokens: int
    dense_spans: tuple[tuple[int, int], ...] = ()
    """(first step-token row, length) of fresh prompts the kernel path attends with dense causal SDPA."""


def build_attention_metadata(
    *,
    lengths: np.ndarray,
    starts: np.ndarray,
    block_tables: np.ndarray,
    block_size: int,
    null_block: int,
    windows: Iterable[int | None],
    device: torch.device,
    padded_groups: bool = True,
) -> AttentionMetadata:
    """lengths/starts: per item, query tokens and cached tokens before them; block_tables: [items, max_blocks]
    padded with `null_block`. Tokens are laid out item after item, as the step's flat batch is.
    `padded_groups`: also build the gather indices and masks the torch attention path needs."""
    offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    num_tokens = int(lengths.sum())
    item_of_token = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.arange(num_tokens) - offsets[item_of_token] + starts[item_of_token]
    slots = block_tables[item_of_token, positions // block_size] * block_size + positions % block_size
    step = _Step(lengths, starts, offsets, block_tables, block_size, null_block, tuple(set(windows)), device)
    members = (np.flatnonzero(lengths == 1), np.flatnonzero(lengths > 1)) if padded_groups else ()
    dense = np.zeros(len(lengths), dtype=bool) if padded_groups else _dense(lengths, starts, step.windows)
    paged = np.flatnonzero(~dense)
    sequences = None
    if len(paged):
        sequences = SequenceLayout(
            q_starts=_to(offsets[paged], device),
            q_lens=_to(lengths[paged], device),
            ctx_lens=_to(starts[paged] + lengths[paged], device),
            tables=_to(block_tables[paged], device),
        )
    return AttentionMetadata(
        slot_mapping=_to(slots, device),
        positions=_to(positions, device),
        sequences=sequences,
        groups=tuple(_group(step, m) for m in members if len(m)),
        num_tokens=num_tokens,
        dense_spans=tuple((int(offsets[i]), int(lengths[i])) for i in np.flatnonzero(dense)),
    )


def _dense(lengths: np.ndarray, starts: np.ndarray, windows: tuple[int | None, ...]) -> np.ndarray:
    """Items that are whole fresh prompts of at least DENSE_PREFILL_MIN tokens and, under a sliding
    window, no longer than it (plain causal attention is then exact)."""
    longest = min((w for w in windows if w is not None), default=None)
    dense = (starts == 0) & (lengths >= DENSE_PREFILL_MIN)
    return dense if longest is None else dense & (lengths <= longest)


@dataclass(frozen=True)
class _Step:
    lengths: np.ndarray
    starts: np.ndarray
    offsets: np.ndarray
    block_tables: np.ndarray
    block_size: int
    null_block: int
    windows: tuple[int | None, ...]
    device: torch.device


def _group(step: _Step, members: np.ndarray) -> AttentionGroup:
    """The padded layout of `members` (item indices): gather ids, masks, query and output rows."""
    lens, begins, firsts = step.lengths[members], step.starts[members], step.offsets[members]
    ends, bs, device = begins + lens, step.block_size, step.device
    q_len = int(lens.max())
    num_blocks = int((ends.max() + bs - 1) // bs)
    needed = (ends + bs - 1) // bs
    tables = np.where(
        np.arange(num_blocks)[None, :] < needed[:, None],
        step.block_tables[members, :num_blocks],
        step.null_block,
    )
    q_pos = begins[:, None] + np.arange(q_len)[None, :]
    key_pos = np.arange(num_blocks * bs)
    causal = key_pos[None, None, :] <= q_pos[:, :, None]
    masks = {
        w: _to(
            (causal if w is None else causal & (key_pos[None, None, :] > q_pos[:, :, None] - w))[:, None],
            device,
        )
        for w in step.windows
    }
    is_real = np.arange(q_len)[None, :] < lens[:, None]
    rows = firsts[:, None] + np.minimum(np.arange(q_len)[None, :], lens[:, None] - 1)
    padded = not bool(is_real.all())
    whole = len(members) == len(step.lengths)
    return AttentionGroup(
        num_seqs=len(members),
        q_len=q_len,
        kv_len=num_blocks * bs,
        block_ids=_to(tables.reshape(-1), device),
        masks=masks,
        q_index=None if whole and not padded else _to(rows.reshape(-1), device),
        valid_index=_to(np.flatnonzero(is_real.reshape(-1)), device) if padded else None,
        token_rows=None if whole else _to(rows[is_real], device),
    )


def _to(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device.type == "cpu" else tensor.to(device, non_blocking=True)

"""Per-step attention inputs built once from the batch and shared by every layer: slots, gathers, masks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch


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
    kv_lens: torch.Tensor
    """[num_seqs] int64 context length of each sequence after this step (cached + new tokens)."""
    masks: dict[int | None, torch.Tensor]
    """Sliding window (None: full attention) -> bool [num_seqs, 1, q_len, kv_len], True = attend."""
    q_index: torch.Tensor | None
    """[num_seqs * q_len] step-token rows feeding the padded queries; None: all rows, in order."""
    valid_index: torch.Tensor | None
    """Rows of the padded [num_seqs * q_len] output that are real queries; None: all of them."""
    token_rows: torch.Tensor | None
    """Step-token rows the valid outputs belong to; None: all rows, in order."""


@dataclass(frozen=True)
class AttentionMetadata:
    slot_mapping: torch.Tensor
    """[tokens] flat KV slot (block * block_size + offset) each step token's K and V are written to."""
    positions: torch.Tensor
    """[tokens] each step token's position in its sequence (rotary embeddings use it)."""
    groups: tuple[AttentionGroup, ...]
    num_tokens: int


def build_attention_metadata(
    *,
    lengths: np.ndarray,
    starts: np.ndarray,
    block_tables: np.ndarray,
    block_size: int,
    null_block: int,
    windows: Iterable[int | None],
    device: torch.device,
) -> AttentionMetadata:
    """lengths/starts: per item, query tokens and cached tokens before them; block_tables: [items, max_blocks]
    padded with `null_block`. Tokens are laid out item after item, as the step's flat batch is."""
    offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    num_tokens = int(lengths.sum())
    item_of_token = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.arange(num_tokens) - offsets[item_of_token] + starts[item_of_token]
    slots = block_tables[item_of_token, positions // block_size] * block_size + positions % block_size
    windows = sorted(set(windows), key=lambda w: -1 if w is None else w)
    decode = np.flatnonzero(lengths == 1)
    prefill = np.flatnonzero(lengths > 1)
    groups = []
    for members in (decode, prefill):
        if len(members):
            whole = len(members) == len(lengths)
            groups.append(
                _group(
                    members,
                    whole,
                    lengths,
                    starts,
                    offsets,
                    block_tables,
                    block_size,
                    null_block,
                    windows,
                    device,
                )
            )
    return AttentionMetadata(
        slot_mapping=_to(slots, device),
        positions=_to(positions, device),
        groups=tuple(groups),
        num_tokens=num_tokens,
    )


def _group(
    members: np.ndarray,
    whole: bool,
    lengths: np.ndarray,
    starts: np.ndarray,
    offsets: np.ndarray,
    block_tables: np.ndarray,
    block_size: int,
    null_block: int,
    windows: list[int | None],
    device: torch.device,
) -> AttentionGroup:
    lens, begins, firsts = lengths[members], starts[members], offsets[members]
    ends = begins + lens
    q_len = int(lens.max())
    num_blocks = int((ends.max() + block_size - 1) // block_size)
    tables = block_tables[members, :num_blocks]
    needed = (ends + block_size - 1) // block_size
    tables = np.where(np.arange(num_blocks)[None, :] < needed[:, None], tables, null_block)
    kv_len = num_blocks * block_size
    q_pos = begins[:, None] + np.arange(q_len)[None, :]
    key_pos = np.arange(kv_len)
    causal = key_pos[None, None, :] <= q_pos[:, :, None]
    masks = {}
    for window in windows:
        mask = causal if window is None else causal & (key_pos[None, None, :] > q_pos[:, :, None] - window)
        masks[window] = _to(mask[:, None], device)
    is_real = np.arange(q_len)[None, :] < lens[:, None]
    rows = firsts[:, None] + np.minimum(np.arange(q_len)[None, :], lens[:, None] - 1)
    padded = not bool(is_real.all())
    return AttentionGroup(
        num_seqs=len(members),
        q_len=q_len,
        kv_len=kv_len,
        block_ids=_to(tables.reshape(-1), device),
        kv_lens=_to(ends.astype(np.int64), device),
        masks=masks,
        q_index=None if whole and not padded else _to(rows.reshape(-1), device),
        valid_index=_to(np.flatnonzero(is_real.reshape(-1)), device) if padded else None,
        token_rows=None if whole else _to(rows[is_real], device),
    )


def _to(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device.type == "cpu" else tensor.to(device, non_blocking=True)

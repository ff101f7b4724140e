"""build_step_inputs: the flat batch layout, and the engine-contract checks on block tables."""

from __future__ import annotations

import pytest
import torch

from server.backends.pytorch.step_inputs import StepLayout, build_step_inputs
from server.engine.runner import BatchItem
from server.engine.sampling_params import SamplingParams

LAYOUT = StepLayout(
    block_size=4,
    num_blocks=10,
    vocab_size=50,
    windows=(None,),
    device=torch.device("cpu"),
    padded_groups=True,
)
PARAMS = SamplingParams(max_tokens=4)


def item(rid: str, tokens: list[int], start: int, table: list[int], sample: bool = True) -> BatchItem:
    return BatchItem(rid, tokens, start, table, sample, PARAMS, start + len(tokens), [])


def test_flat_layout_positions_slots_and_sampled_rows() -> None:
    step = build_step_inputs(
        [item("a", [5, 6, 7], 0, [2], sample=False), item("b", [9], 5, [7, 3]), item("c", [1, 2], 3, [4, 8])],
        LAYOUT,
    )
    assert step.input_ids.tolist() == [5, 6, 7, 9, 1, 2]
    assert step.meta.positions.tolist() == [0, 1, 2, 5, 3, 4]
    assert step.meta.slot_mapping.tolist() == [8, 9, 10, 13, 19, 32]
    assert step.sampled == [1, 2] and step.logits_rows.tolist() == [3, 5]
    assert step.meta.sequences.ctx_lens.tolist() == [3, 6, 5]
    assert [g.q_len for g in step.meta.groups] == [1, 3]


def test_out_of_vocabulary_ids_are_reported_and_zeroed() -> None:
    step = build_step_inputs([item("a", [5, 99], 0, [1]), item("b", [-1], 0, [2])], LAYOUT)
    assert step.input_ids.tolist() == [5, 0, 0]
    assert set(step.invalid) == {0, 1} and "99" in step.invalid[0] and "-1" in step.invalid[1]


def test_short_block_table_is_an_engine_bug() -> None:
    with pytest.raises(RuntimeError, match="block table has 1 blocks"):
        build_step_inputs([item("a", [1, 2, 3], 3, [0])], LAYOUT)


@pytest.mark.parametrize("block", [10, -1])
def test_block_ids_outside_the_pool_are_an_engine_bug(block: int) -> None:
    with pytest.raises(RuntimeError, match="outside"):
        build_step_inputs([item("a", [1], 4, [3, block])], LAYOUT)

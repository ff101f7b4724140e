"""BlockManager: allocation, ref counts, prefix reuse (and the last-token rule), eviction, integrity."""

from __future__ import annotations

import pytest

from server.engine.block_manager import BlockManager
from server.engine.request import Request
from server.engine.sampling_params import SamplingParams
from tests.unit.engine.factories import make_prompt

BS = 4


def req(rid: str, tokens: list[int]) -> Request:
    return Request(rid, tokens, SamplingParams(max_tokens=4))


def computed(bm: BlockManager, r: Request) -> None:
    """Pretend the runner computed KV for all of r's tokens, as the scheduler reports it."""
    r.num_computed_tokens = r.num_tokens
    bm.cache_computed(r)


def test_allocate_gives_distinct_blocks_covering_every_token_and_free_returns_them() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS)
    a, b = req("a", make_prompt(9)), req("b", make_prompt(4, seed=2))
    assert bm.allocate(a) == 0 and bm.allocate(b) == 0
    assert len(bm.block_table("a")) == 3 and len(bm.block_table("b")) == 1
    assert not set(bm.block_table("a")) & set(bm.block_table("b"))
    assert (bm.num_used_blocks, bm.num_free_blocks) == (4, 4)
    bm.check_integrity()
    bm.free("a")
    bm.free("a")  # idempotent
    assert bm.block_table("a") == [] and bm.num_free_blocks == 7
    bm.check_integrity()


def test_allocation_that_does_not_fit_returns_none_and_changes_nothing() -> None:
    bm = BlockManager(num_blocks=3, block_size=BS)
    assert bm.allocate(req("a", make_prompt(8))) == 0
    big = req("b", make_prompt(5, seed=3))
    assert not bm.can_allocate(big)
    assert bm.allocate(big) is None
    assert not bm.has_blocks("b") and bm.num_free_blocks == 1
    bm.check_integrity()


def test_second_request_with_same_prefix_reuses_full_computed_blocks() -> None:
    bm = BlockManager(num_blocks=16, block_size=BS)
    prompt = make_prompt(10)
    a = req("a", prompt)
    bm.allocate(a)
    computed(bm, a)
    b = req("b", [*prompt[:8], 7, 7, 7])
    assert bm.allocate(b) == 8
    assert bm.block_table("b")[:2] == bm.block_table("a")[:2]
    assert bm.block_table("b")[2] != bm.block_table("a")[2]
    assert (bm.num_queried_blocks_total, bm.num_reused_blocks_total) == (2 + 2, 2)
    bm.check_integrity()
    # Shared blocks stay in use until both sequences free them, then remain cached.
    bm.free("a")
    assert bm.num_used_blocks == 3
    bm.free("b")
    assert bm.num_used_blocks == 0
    c = req("c", prompt)
    assert bm.allocate(c) == 8
    bm.check_integrity()


def test_block_holding_the_last_prompt_token_is_never_reused() -> None:
    bm = BlockManager(num_blocks=16, block_size=BS)
    prompt = make_prompt(8)  # exactly two full blocks
    a = req("a", prompt)
    bm.allocate(a)
    computed(bm, a)
    b = req("b", prompt)
    assert bm.allocate(b) == 4  # the second block holds the last token: recomputed
    assert bm.block_table("b")[0] == bm.block_table("a")[0]
    assert bm.block_table("b")[1] != bm.block_table("a")[1]
    bm.check_integrity()


def test_blocks_are_not_reused_before_their_kv_is_computed() -> None:
    bm = BlockManager(num_blocks=16, block_size=BS)
    prompt = make_prompt(12)
    a = req("a", prompt)
    bm.allocate(a)
    a.num_computed_tokens = 5  # one block done, the second only partly
    bm.cache_computed(a)
    assert bm.allocate(req("b", prompt)) == 4


def test_hashes_chain_so_equal_blocks_after_different_prefixes_do_not_match() -> None:
    bm = BlockManager(num_blocks=16, block_size=BS)
    tail = [9, 9, 9, 9, 5]
    a = req("a", [1, 2, 3, 4, *tail])
    bm.allocate(a)
    computed(bm, a)
    assert bm.allocate(req("b", [1, 2, 3, 5, *tail])) == 0


def test_lru_eviction_hands_out_uncached_blocks_first_then_least_recently_freed() -> None:
    bm = BlockManager(num_blocks=6, block_size=BS)
    old = req("old", make_prompt(9, seed=1))  # 2 cacheable blocks + 1 partial
    bm.allocate(old)
    computed(bm, old)
    bm.free("old")
    new = req("new", make_prompt(9, seed=2))
    bm.allocate(new)
    computed(bm, new)
    bm.free("new")
    assert bm.num_free_blocks == 6 and bm.num_evicted_blocks_total == 0
    # 4 blocks: the 2 never-cached ones, then old's 2 cached blocks (its tail block first).
    filler = req("filler", make_prompt(14, seed=3))
    bm.allocate(filler)
    assert bm.num_evicted_blocks_total == 2
    bm.check_integrity()
    bm.free("filler")
    assert bm.allocate(req("old2", make_prompt(9, seed=1))) == 0
    assert bm.allocate(req("new2", make_prompt(9, seed=2))) == 8
    bm.check_integrity()


def test_eviction_takes_the_tail_of_a_cached_prefix_first() -> None:
    bm = BlockManager(num_blocks=4, block_size=BS)
    prompt = make_prompt(13)
    a = req("a", prompt)
    bm.allocate(a)
    computed(bm, a)
    bm.free("a")
    # Takes a's uncached partial block, then evicts the last full block of its prefix.
    bm.allocate(req("x", [5] * 5))
    assert bm.num_evicted_blocks_total == 1
    assert bm.allocate(req("b", prompt)) is None  # 2 cached + 2 new blocks needed, 2 free
    bm.free("x")
    assert bm.allocate(req("b", prompt)) == 8


def test_append_slot_adds_a_block_only_at_a_boundary_and_says_when_it_cannot() -> None:
    bm = BlockManager(num_blocks=2, block_size=BS)
    a = req("a", make_prompt(4))
    bm.allocate(a)
    assert bm.append_slot(a) and len(bm.block_table("a")) == 1
    a.token_ids.append(3)  # a sampled token at position 4 needs a second block
    assert bm.can_append(a) and bm.append_slot(a)
    assert len(bm.block_table("a")) == 2
    a.token_ids.extend([3, 3, 3, 3])
    assert not bm.can_append(a)
    assert bm.append_slot(a) is False and len(bm.block_table("a")) == 2
    bm.check_integrity()


def test_prefix_caching_off_never_shares() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS, enable_prefix_caching=False)
    prompt = make_prompt(9)
    a = req("a", prompt)
    bm.allocate(a)
    computed(bm, a)
    assert bm.allocate(req("b", prompt)) == 0
    assert bm.num_queried_blocks_total == 0 and a.block_hashes == []
    bm.check_integrity()


def test_same_content_computed_twice_keeps_one_cache_entry() -> None:
    bm = BlockManager(num_blocks=8, block_size=BS)
    prompt = make_prompt(6)
    a, b = req("a", prompt), req("b", prompt)
    bm.allocate(a)
    bm.allocate(b)
    computed(bm, a)
    computed(bm, b)
    bm.check_integrity()
    bm.free("a")
    bm.free("b")
    bm.check_integrity()
    assert bm.allocate(req("c", prompt)) == 4


@pytest.mark.parametrize("corruption", ["ref", "free", "cache"])
def test_check_integrity_reports_corruption(corruption: str) -> None:
    bm = BlockManager(num_blocks=4, block_size=BS)
    a = req("a", make_prompt(5))
    bm.allocate(a)
    computed(bm, a)
    block = bm.block_table("a")[0]
    if corruption == "ref":
        bm._ref[block] += 1
    elif corruption == "free":
        bm._free[block] = None
    else:
        bm._cached[b"bogus"] = block
    with pytest.raises(AssertionError):
        bm.check_integrity()

"""The paged KV pool: fixed-size blocks, per-sequence block tables, ref counts and the prefix cache."""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter, OrderedDict

from server.engine.request import Request

_ROOT_HASH = b"hangar-kv-prefix-v1"


class BlockManager:
    """Hands out KV blocks to sequences and shares full blocks between sequences with the same prefix.

    A full block whose KV has been computed is registered under a chained hash of its tokens (sha256 of
    the parent block's hash and this block's token ids, so crafted prompts cannot collide with another
    client's blocks). Freed blocks stay cached until a new allocation evicts them, least recently freed
    first; blocks holding nothing reusable are handed out before cached ones.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"num_blocks ({num_blocks}) and block_size ({block_size}) must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self._ref = [0] * num_blocks
        self._hash: list[bytes | None] = [None] * num_blocks
        # Blocks with ref count 0, least recently freed first; a dict keeps removal by id O(1).
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._cached: dict[bytes, int] = {}
        self._tables: dict[str, list[int]] = {}
        # Leading blocks of each table already registered in the prefix cache.
        self._num_registered: dict[str, int] = {}
        self.num_queried_blocks_total = 0
        self.num_reused_blocks_total = 0
        self.num_evicted_blocks_total = 0

    @property
    def num_free_blocks(self) -> int:
        """Blocks an allocation may take (cached blocks nobody uses count as free)."""
        return len(self._free)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - len(self._free)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def block_table(self, request_id: str) -> list[int]:
        """The live table (read-only for callers); empty when the request holds no blocks."""
        return self._tables.get(request_id, [])

    def has_blocks(self, request_id: str) -> bool:
        return request_id in self._tables

    # ---- allocation at admission -------------------------------------------------------------------

    def can_allocate(self, request: Request) -> bool:
        return self._plan(request) is not None

    def allocate(self, request: Request) -> int | None:
        """Give `request` blocks for all its tokens, reusing cached prefix blocks.

        Returns the number of leading tokens whose KV is already there (a multiple of block_size, always
        below request.num_tokens), or None when the pool cannot hold the request now.
        """
        assert request.request_id not in self._tables, f"{request.request_id} already holds blocks"
        plan = self._plan(request)
        if plan is None:
            return None
        hits, num_new = plan
        for block in hits:
            if self._ref[block] == 0:
                del self._free[block]
            self._ref[block] += 1
        table = hits + [self._take_free() for _ in range(num_new)]
        self._tables[request.request_id] = table
        self._num_registered[request.request_id] = len(hits)
        if self.enable_prefix_caching:
            self.num_queried_blocks_total += (request.num_tokens - 1) // self.block_size
            self.num_reused_blocks_total += len(hits)
        return len(hits) * self.block_size

    def _plan(self, request: Request) -> tuple[list[int], int] | None:
        """(cached prefix blocks, new blocks needed), or None if they do not fit in the free pool."""
        hits = self._lookup(request)
        num_new = self.blocks_needed(request.num_tokens) - len(hits)
        num_revived = sum(1 for block in hits if self._ref[block] == 0)
        if num_new + num_revived > len(self._free):
            return None
        return hits, num_new

    def _lookup(self, request: Request) -> list[int]:
        if not self.enable_prefix_caching:
            return []
        # The block holding the last token is never reused: at least one token must be computed to
        # produce the logits that sample the next token.
        num_candidates = (request.num_tokens - 1) // self.block_size
        hashes = self._hashes(request, num_candidates)
        hits: list[int] = []
        for h in hashes[:num_candidates]:
            block = self._cached.get(h)
            if block is None:
                break
            hits.append(block)
        return hits

    def _hashes(self, request: Request, num_full_blocks: int) -> list[bytes]:
        """request.block_hashes extended to cover `num_full_blocks` blocks (each hashed once)."""
        hashes = request.block_hashes
        bs = self.block_size
        tokens = request.token_ids
        for i in range(len(hashes), num_full_blocks):
            parent = hashes[i - 1] if i else _ROOT_HASH
            chunk = array("q", tokens[i * bs : (i + 1) * bs]).tobytes()
            hashes.append(hashlib.sha256(parent + chunk).digest())
        return hashes

    def _take_free(self) -> int:
        block, _ = self._free.popitem(last=False)
        h = self._hash[block]
        if h is not None:
            # Evict: its content is about to be overwritten.
            if self._cached.get(h) == block:
                del self._cached[h]
            self._hash[block] = None
            self.num_evicted_blocks_total += 1
        self._ref[block] = 1
        return block

    # ---- growth during decode ----------------------------------------------------------------------

    def can_append(self, request: Request) -> bool:
        table = self._tables[request.request_id]
        return len(table) * self.block_size >= request.num_tokens or len(self._free) > 0

    def append_slot(self, request: Request) -> bool:
        """Make the table cover every token of `request` (one new block at a block boundary).

        Returns False, changing nothing, when a block is needed and none is free.
        """
        table = self._tables[request.request_id]
        if len(table) * self.block_size >= request.num_tokens:
            return True
        if not self._free:
            return False
        table.append(self._take_free())
        return True

    # ---- prefix registration and release -----------------------------------------------------------

    def cache_computed(self, request: Request) -> None:
        """Register the request's full blocks whose KV is now computed, so later prompts can reuse them."""
        if not self.enable_prefix_caching:
            return
        rid = request.request_id
        done = self._num_registered[rid]
        num_full = request.num_computed_tokens // self.block_size
        if num_full <= done:
            return
        table = self._tables[rid]
        hashes = self._hashes(request, num_full)
        for i in range(done, num_full):
            block, h = table[i], hashes[i]
            # A block with the same content computed concurrently elsewhere keeps the first registration.
            if self._hash[block] is None and h not in self._cached:
                self._hash[block] = h
                self._cached[h] = block
        self._num_registered[rid] = num_full

    def free(self, request_id: str) -> None:
        """Drop the request's references; unknown ids are ignored (freeing is idempotent)."""
        table = self._tables.pop(request_id, None)
        self._num_registered.pop(request_id, None)
        if table is None:
            return
        # Tail blocks first, so a prefix's later blocks are evicted before the blocks they extend.
        for block in reversed(table):
            self._ref[block] -= 1
            if self._ref[block] == 0:
                self._free[block] = None
                if self._hash[block] is None:
                    self._free.move_to_end(block, last=False)

    # ---- invariants --------------------------------------------------------------------------------

    def check_integrity(self) -> None:
        """Raise AssertionError describing the first broken invariant (tests call it after every step)."""
        counts: Counter[int] = Counter()
        for rid, table in self._tables.items():
            if len(set(table)) != len(table):
                raise AssertionError(f"{rid}: block table {table} repeats a block")
            counts.update(table)
        for block in range(self.num_blocks):
            ref = self._ref[block]
            if ref != counts[block]:
                raise AssertionError(f"block {block}: ref {ref} but {counts[block]} tables use it")
            if (ref == 0) != (block in self._free):
                raise AssertionError(f"block {block}: ref {ref}, in the free list: {block in self._free}")
            h = self._hash[block]
            if h is not None and self._cached.get(h) != block:
                raise AssertionError(f"block {block}: hashed but not the cache entry for its hash")
        for h, block in self._cached.items():
            if self._hash[block] != h:
                raise AssertionError(f"cache entry for block {block} does not match the block's hash")
        if set(self._num_registered) != set(self._tables):
            raise AssertionError("registration counters and block tables name different requests")
        if not self.enable_prefix_caching and self._cached:
            raise AssertionError("prefix cache populated while prefix caching is off")

"""Host memory helpers: the huge-page KV pool allocation and the malloc tuning are safe to use."""

from __future__ import annotations

import pytest
import torch

from server.backends.pytorch.host_memory import HUGE_PAGE_BYTES, huge_page_zeros, retain_freed_memory


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_huge_page_zeros_is_a_zeroed_aligned_tensor(dtype: torch.dtype) -> None:
    t = huge_page_zeros((3, 5, 4096), dtype)
    if t is None:
        pytest.skip("no MADV_HUGEPAGE on this platform")
    assert t.shape == (3, 5, 4096) and t.dtype == dtype and t.is_contiguous()
    assert t.data_ptr() % HUGE_PAGE_BYTES == 0
    assert not t.any()
    t[2, 4, -1] = 7  # the whole range is writable
    assert t.sum().item() == 7


def test_retain_freed_memory_is_idempotent() -> None:
    first = retain_freed_memory()
    assert retain_freed_memory() == first

"""Host memory for CPU inference: reuse of freed step buffers, and a KV pool on transparent huge pages."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import mmap
import sys
import threading

import torch

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30
_done = threading.Event()


def retain_freed_memory() -> bool:
    """Make malloc serve allocations below 1 GiB from its heap and keep up to 1 GiB of freed memory.

    A CPU forward pass allocates and frees tens of megabytes of activations per layer. By default
    glibc maps each such block fresh and unmaps it on free, so every step pays page faults and zeroing
    for the same memory again (about a third of a prefill step here). Process-wide and idempotent; a
    no-op (False) off glibc.
    """
    if _done.is_set():
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError) as e:
        log.debug("mallopt unavailable: %s", e)
        return False
    if ok:
        _done.set()
    return ok


HUGE_PAGE_BYTES = 2 << 20


def huge_page_zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """A zeroed CPU tensor in an anonymous mapping advised onto transparent huge pages, or None where
    that is unavailable. Attention reads KV blocks scattered over the whole pool; with 4 KiB pages
    nearly every block read misses the TLB (about 15% of decode attention time here)."""
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None:
        return None
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    try:
        mapping = mmap.mmap(-1, nbytes + HUGE_PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        mapping.madvise(advice)
    except (OSError, ValueError, OverflowError) as e:
        log.debug("no huge-page mapping for %d bytes: %s", nbytes, e)
        return None
    raw = torch.frombuffer(mapping, dtype=torch.uint8)  # keeps `mapping` alive as long as any view
    offset = (-raw.data_ptr()) % HUGE_PAGE_BYTES
    return raw[offset : offset + nbytes].view(dtype).view(shape)

"""Directory renames that never clobber: Linux renameat2 (NOREPLACE, EXCHANGE), with portable fallbacks."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path
from typing import Any

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}


def _load_renameat2() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def _call(src: Path, dst: Path, flags: int) -> bool:
    """True when renameat2 did it; False when this kernel/filesystem cannot; OSError for real failures."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_new(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, failing with FileExistsError if `dst` exists (even as an empty dir,
    which a plain POSIX rename would silently replace)."""
    if _call(src, dst, _RENAME_NOREPLACE):
        return
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "already exists", str(dst))
    os.rename(src, dst)


def swap_dirs(new: Path, current: Path, aside: Path) -> Path:
    """Put `new` in place of the existing `current`; returns where the old contents now are.

    With renameat2 the two swap atomically, so `current` never disappears (the old contents end up at
    `new`). Without it, `current` is renamed to `aside` first and `new` into its place: a reader can
    see `current` missing for the moment between the two renames.
    """
    if _call(new, current, _RENAME_EXCHANGE):
        return new
    os.rename(current, aside)
    try:
        rename_new(new, current)
    except BaseException:
        os.rename(aside, current)
        raise
    return aside


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Compiles a kernel's C source into a shared library once per source, flags and CPU, and caches it."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-fopenmp")
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """$HANGAR_KERNEL_CACHE, else ~/.cache/hangar/kernels (a temp dir when home is not writable)."""
    configured = os.environ.get("HANGAR_KERNEL_CACHE")
    if configured:
        return Path(configured)
    home = Path.home() / ".cache" / "hangar" / "kernels"
    try:
        home.mkdir(parents=True, exist_ok=True)
        return home
    except OSError:
        return Path(tempfile.gettempdir()) / f"hangar-kernels-{os.getuid()}"


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build(source: Path) -> Path | None:
    """The compiled library for `source`, building it if needed; None when no compiler can build it."""
    cc = compiler()
    if cc is None:
        log.warning("no C compiler found: native kernels are off, attention runs in torch")
        return None
    # the headers beside the source (shared helpers such as bf16.h) are part of what gets compiled
    text = b"".join(p.read_bytes() for p in (source, *sorted(source.parent.glob("*.h"))))
    key = hashlib.sha256(text + " ".join((cc, *FLAGS)).encode() + _cpu_signature()).hexdigest()[:16]
    directory = cache_dir()
    target = directory / f"{source.stem}-{key}.so"
    with _LOCK:
        if target.is_file():
            return target
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for flags in (FLAGS, tuple(f for f in FLAGS if f != "-fopenmp")):
                if _compile(cc, source, target, flags):
                    return target
        except OSError as e:
            log.warning("cannot build %s in %s: %s", source.name, directory, e)
    return None


def load_library(source: Path) -> ctypes.CDLL | None:
    """`build(source)` loaded with ctypes; None (and a warning) when it cannot be built or loaded."""
    path = build(source)
    if path is None:
        return None
    try:
        return ctypes.CDLL(str(path))
    except OSError as e:
        log.warning("cannot load the native kernel %s: %s", path, e)
        return None


def _compile(cc: str, source: Path, target: Path, flags: tuple[str, ...]) -> bool:
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run(
            [cc, *flags, str(source), "-o", tmp, "-lm"], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            log.warning(
                "compiling %s with %s failed: %s", source.name, " ".join(flags), result.stderr[-2000:]
            )
            return False
        os.replace(tmp, target)  # atomic: concurrent builders never see a half-written library
        return True
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("compiling %s failed: %s", source.name, e)
        return False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cpu_signature() -> bytes:
    """-march=native code only runs on CPUs with the same features."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return (platform.machine() + flags).encode()

"""NativeKernel: a C kernel with one function per dtype, built at first use and called through ctypes."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from server.backends.pytorch.kernels.native_build import load_library

log = logging.getLogger(__name__)
K = TypeVar("K", bound="NativeKernel")


class NativeKernel:
    """Subclasses name their source, the function of each dtype, and its ctypes signature."""

    SOURCE: ClassVar[Path]
    SYMBOLS: ClassVar[Mapping[torch.dtype, str]]
    ARGTYPES: ClassVar[Sequence[Any]]
    RESTYPE: ClassVar[Any] = None

    def __init__(self, library: ctypes.CDLL) -> None:
        self._functions: dict[torch.dtype, Callable[..., Any]] = {}
        for dtype, name in self.SYMBOLS.items():
            fn = getattr(library, name)
            fn.argtypes = list(self.ARGTYPES)
            fn.restype = self.RESTYPE
            self._functions[dtype] = fn

    @classmethod
    def load(cls: type[K]) -> K | None:
        """Builds (or finds the cached build of) the kernel; None when it cannot be built or loaded."""
        library = load_library(cls.SOURCE)
        if library is None:
            return None
        try:
            return cls(library)
        except AttributeError as e:
            log.warning("the native kernel %s lacks a symbol: %s", cls.SOURCE.name, e)
            return None

    @classmethod
    def supports(cls, dtype: torch.dtype, device: torch.device) -> bool:
        return device.type == "cpu" and dtype in cls.SYMBOLS

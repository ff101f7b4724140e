"""pb_utils.Tensor: a named numpy array, as Triton's Python backend hands tensors to model code."""

from __future__ import annotations

from typing import Any

import numpy as np

from server.backends.python.pb_response import TritonModelException


class Tensor:
    """A named tensor held as a numpy array (BYTES as an object array of `bytes`); always in CPU memory."""

    __slots__ = ("_array", "_name")

    def __init__(self, name: str, tensor: Any) -> None:
        if not isinstance(name, str):
            raise TritonModelException(f"tensor name must be a string, got {type(name).__name__}")
        self._name = name
        self._array = tensor if isinstance(tensor, np.ndarray) else np.asarray(tensor)

    @classmethod
    def wrap(cls, name: str, array: np.ndarray) -> Tensor:
        """A request's input as model code receives it (name and array already checked)."""
        self = cls.__new__(cls)
        self._name = name
        self._array = array
        return self

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array

    def shape(self) -> list[int]:
        return [int(d) for d in self._array.shape]

    def is_cpu(self) -> bool:
        return True

    def to_dlpack(self) -> Any:
        """A DLPack capsule over the array (no copy); e.g. `torch.utils.dlpack.from_dlpack(t.to_dlpack())`."""
        if self._array.dtype.kind in "OSU":
            raise TritonModelException(f"tensor '{self._name}' holds BYTES, which DLPack cannot carry")
        return self._array.__dlpack__()

    @staticmethod
    def from_dlpack(name: str, dlpack: Any) -> Tensor:
        """From an object with `__dlpack__` (torch, numpy, cupy) or a DLPack capsule (needs torch)."""
        if hasattr(dlpack, "__dlpack__"):
            owner = dlpack.cpu() if hasattr(dlpack, "cpu") else dlpack
            return Tensor(name, np.from_dlpack(owner))
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a project dependency
            raise TritonModelException(
                "Tensor.from_dlpack with a capsule needs torch; pass the tensor"
            ) from None
        return Tensor(name, torch.utils.dlpack.from_dlpack(dlpack).cpu().numpy())

    def __repr__(self) -> str:
        return f"Tensor({self._name!r}, shape={self.shape()}, dtype={self._array.dtype})"

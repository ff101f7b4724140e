"""tritonclient inputs from numpy arrays, for tests that talk to a real server."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import np_to_triton_dtype


def infer_input(name: str, array: np.ndarray) -> grpcclient.InferInput:
    """An InferInput carrying `array` as raw bytes; its Triton datatype follows the numpy dtype
    (object arrays of bytes -> BYTES, `ml_dtypes.bfloat16` -> BF16)."""
    inp = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    inp.set_data_from_numpy(array)
    return inp


def fp32(name: str, values: list[float] | np.ndarray) -> grpcclient.InferInput:
    return infer_input(name, np.asarray(values, dtype=np.float32))

"""Model warmup: run the config's `model_warmup` samples through a freshly loaded backend before it serves."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from server.backends.base import Backend
from server.errors import ConfigError, LoadError
from server.repository.model_config import ModelConfig
from server.types import DataType, InferRequest, Tensor

_SAMPLE_KEYS = {"name", "batch_size", "inputs", "count"}
_INPUT_KEYS = {"data_type", "dims", "zero_data", "random_data", "input_data_file"}
_DATA_KEYS = ("zero_data", "random_data", "input_data_file")
WARMUP_DIRNAME = "warmup"
"""`input_data_file` paths are relative to `<model dir>/warmup/`, as in Triton."""


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected an integer, got {value!r}") from None


def _random(dtype: DataType, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype is DataType.BYTES:
        letters = rng.integers(ord("a"), ord("z") + 1, size=(math.prod(shape), 8), dtype=np.uint8)
        return np.array([bytes(row) for row in letters], dtype=object).reshape(shape)
    if dtype is DataType.BOOL:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype is DataType.BF16:
        f32 = rng.random(size=shape, dtype=np.float32)
        return (f32.view(np.uint32) >> 16).astype(np.uint16)
    np_dtype = dtype.numpy_dtype
    if np_dtype.kind == "f":
        return rng.random(size=shape).astype(np_dtype)
    # Small non-negative integers are valid for every integer type (and as token ids).
    return rng.integers(0, 100, size=shape).astype(np_dtype)


def _bytes_elements(raw: bytes, count: int) -> list[bytes]:
    """Length-prefixed (4-byte little-endian) elements if the file holds exactly `count`; else one element."""
    items, offset = [], 0
    while offset + 4 <= len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + n > len(raw):
            break
        items.append(raw[offset + 4 : offset + 4 + n])
        offset += 4 + n
    if offset == len(raw) and len(items) == count:
        return items
    if count == 1:
        return [raw]
    raise ConfigError(f"warmup file holds no {count} length-prefixed BYTES elements")


def _from_file(dtype: DataType, shape: tuple[int, ...], filename: str, model_dir: Path) -> np.ndarray:
    base = (model_dir / WARMUP_DIRNAME).resolve()
    path = (base / filename).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(f"warmup input_data_file '{filename}' is outside {base}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"warmup input_data_file '{path}' cannot be read: {e.strerror or e}") from None
    count = math.prod(shape)
    if dtype is DataType.BYTES:
        return np.array(_bytes_elements(raw, count), dtype=object).reshape(shape)
    needed = count * dtype.itemsize
    if len(raw) != needed:
        raise ConfigError(
            f"warmup input_data_file '{path}' has {len(raw)} bytes; shape {list(shape)} needs {needed}"
        )
    return np.frombuffer(raw, dtype=dtype.numpy_dtype).reshape(shape).copy()


def _tensor(name: str, spec: Mapping[str, Any], config: ModelConfig, model_dir: Path, seed: int) -> Tensor:
    unknown = set(spec) - _INPUT_KEYS
    if unknown:
        raise ConfigError(f"warmup input '{name}': unknown keys {sorted(unknown)}")
    dtype = DataType.from_config(str(spec.get("data_type", "TYPE_INVALID")))
    dims = tuple(_int(d, f"warmup input '{name}' dims") for d in spec.get("dims", ()))
    if any(d < 1 for d in dims):
        raise ConfigError(f"warmup input '{name}': dims {list(dims)} must all be positive")
    shape = ((1,) if config.max_batch_size > 0 else ()) + dims
    kinds = [k for k in _DATA_KEYS if k in spec]
    if len(kinds) != 1:
        raise ConfigError(f"warmup input '{name}': set exactly one of {', '.join(_DATA_KEYS)}")
    if kinds[0] == "input_data_file":
        data = _from_file(dtype, shape, str(spec["input_data_file"]), model_dir)
    elif kinds[0] == "random_data":
        data = _random(dtype, shape, np.random.default_rng(seed))
    elif dtype is DataType.BYTES:
        data = np.full(shape, b"", dtype=object)
    else:
        data = np.zeros(shape, dtype=dtype.numpy_dtype)
    return Tensor(name, dtype, data)


def warmup_requests(
    config: ModelConfig, model_dir: Path, version: int
) -> list[tuple[list[InferRequest], int]]:
    """Per sample: its `batch_size` requests (batch 1 each, as Triton sends them) and its repeat count.

    Raises:
        ConfigError: a sample is malformed (unknown key, bad dims, missing or short data file).
    """
    plans: list[tuple[list[InferRequest], int]] = []
    for i, sample in enumerate(config.model_warmup):
        unknown = set(sample) - _SAMPLE_KEYS
        sname = str(sample.get("name", f"#{i}"))
        if unknown:
            raise ConfigError(f"warmup sample '{sname}': unknown keys {sorted(unknown)}")
        batch = max(1, _int(sample.get("batch_size", 1), f"warmup sample '{sname}' batch_size"))
        if batch > max(1, config.max_batch_size):
            raise ConfigError(f"warmup sample '{sname}': batch_size {batch} exceeds max_batch_size")
        count = max(1, _int(sample.get("count", 1), f"warmup sample '{sname}' count"))
        inputs = dict(sample.get("inputs", {}))
        requests = [
            InferRequest(
                model_name=config.name,
                model_version=str(version),
                id=f"warmup-{sname}-{b}",
                inputs={n: _tensor(n, s, config, model_dir, seed=i * 1000 + b) for n, s in inputs.items()},
            )
            for b in range(batch)
        ]
        plans.append((requests, count))
    return plans


async def _infer_all(backend: Backend, request: InferRequest) -> None:
    async for response in backend.infer(request):
        if response.error is not None:
            raise LoadError(f"warmup request '{request.id}' failed: {response.error}")


async def run_warmup(backend: Backend, config: ModelConfig, model_dir: Path, version: int) -> None:
    """Run every warmup sample `count` times; its `batch_size` requests go concurrently.

    Raises:
        LoadError: a sample is malformed or the backend failed one.
    """
    try:
        plans = warmup_requests(config, model_dir, version)
    except ConfigError as e:
        raise LoadError(f"invalid model_warmup: {e.message}") from e
    for requests, count in plans:
        for _ in range(count):
            try:
                await asyncio.gather(*(_infer_all(backend, r) for r in requests))
            except LoadError:
                raise
            except Exception as e:
                raise LoadError(f"warmup failed: {type(e).__name__}: {e}") from e

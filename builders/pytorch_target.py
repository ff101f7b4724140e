"""`hangar build pytorch`: a Hugging Face checkpoint dir as a version of a pytorch-backend model, checked
by loading it on Hangar's engine and generating before it is dropped."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from builders.errors import BuildInputError
from builders.file_copy import DTYPES, convert_weights, copy_files, set_config_dtype, set_index_size
from builders.hf_checkpoint import CONFIG, HFCheckpoint, inspect_checkpoint
from builders.pytorch_version import PyTorchVersionTarget
from builders.target import BuildContext, Step
from server.backends.pytorch.arch_config import ArchConfig
from server.errors import LoadError


class PyTorchTarget(PyTorchVersionTarget):
    name = "pytorch"

    def __init__(self, checkpoint: Path, dtype: str | None) -> None:
        self.checkpoint_path = checkpoint
        self.dtype = dtype
        self._checkpoint: HFCheckpoint | None = None

    @property
    def checkpoint(self) -> HFCheckpoint:
        if self._checkpoint is None:
            self._checkpoint = inspect_checkpoint(self.checkpoint_path, allow_torch_bin=False)
        return self._checkpoint

    def check(self) -> None:
        if self.dtype is not None and self.dtype not in DTYPES:
            raise BuildInputError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        ckpt = self.checkpoint
        try:
            ArchConfig.from_hf(ckpt.config)
        except LoadError as e:
            raise BuildInputError(f"{ckpt.path / CONFIG}: {e.message}") from None

    def steps(self) -> list[Step]:
        ckpt = self.checkpoint
        size = f"{len(ckpt.weights)} file(s), {ckpt.weight_bytes / 2**20:.1f} MiB"
        weights = (
            f"convert the weights to {self.dtype} ({size})" if self.dtype else f"copy the weights ({size})"
        )
        return [
            Step(f"copy {', '.join(ckpt.small_files)} from {ckpt.path}", self._small_files),
            Step(weights, self._weights),
        ]

    def _small_files(self, ctx: BuildContext) -> None:
        ckpt = self.checkpoint
        index = (ckpt.weight_index,) if ckpt.weight_index else ()
        copy_files(ckpt.path, ctx.staging, (*ckpt.small_files, *index), ctx.reporter, "config and tokenizer")
        if self.dtype:
            set_config_dtype(ctx.staging / CONFIG, self.dtype)

    def _weights(self, ctx: BuildContext) -> None:
        ckpt = self.checkpoint
        if not self.dtype:
            copy_files(ckpt.path, ctx.staging, ckpt.weights, ctx.reporter, "weights")
            return
        total = convert_weights(ckpt.path, ctx.staging, ckpt.weights, self.dtype, ctx.reporter)
        if ckpt.weight_index:
            set_index_size(ctx.staging / ckpt.weight_index, total)

    def source(self) -> Mapping[str, Any]:
        return self.checkpoint.manifest_source()

    def parameters(self) -> Mapping[str, Any]:
        return {"dtype": self.dtype or "as stored"}

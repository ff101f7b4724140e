"""Where each Hugging Face tensor goes in our (fused) parameters, and the checked copy into them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from server.backends.pytorch.layers.linear import Linear
from server.errors import LoadError

IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
"""Buffers some older checkpoints store; we recompute them."""


@dataclass(frozen=True)
class WeightTarget:
    """A parameter, or the rows [start, start + rows) of one when several checkpoint tensors are fused."""

    param: torch.Tensor
    start: int = 0
    rows: int | None = None

    def destination(self) -> torch.Tensor:
        return self.param if self.rows is None else self.param.narrow(0, self.start, self.rows)

    @classmethod
    def fused(
        cls, prefix: str, linear: Linear, start: int = 0, rows: int | None = None
    ) -> dict[str, WeightTarget]:
        """`prefix`.weight (and .bias when the layer has one) into rows of `linear`."""
        targets = {prefix + ".weight": cls(linear.weight, start, rows)}
        if linear.bias is not None:
            targets[prefix + ".bias"] = cls(linear.bias, start, rows)
        return targets


def load_weights(
    targets: dict[str, WeightTarget], tensors: Iterable[tuple[str, torch.Tensor]], *, ignore_lm_head: bool
) -> None:
    """Copies every tensor into its target; every target must be filled exactly once.

    Raises:
        LoadError: an unexpected tensor, a shape mismatch or a missing tensor (each named).
    """
    pending = dict(targets)
    for name, tensor in tensors:
        if name.endswith(IGNORED_SUFFIXES) or (ignore_lm_head and name == "lm_head.weight"):
            continue
        target = pending.pop(name, None)
        if target is None:
            why = "appears twice" if name in targets else "is not part of this architecture"
            raise LoadError(f"checkpoint tensor '{name}' {why}")
        dest = target.destination()
        if tuple(tensor.shape) != tuple(dest.shape):
            raise LoadError(
                f"checkpoint tensor '{name}' has shape {list(tensor.shape)}, expected {list(dest.shape)}"
            )
        with torch.no_grad():
            dest.copy_(tensor)
    if pending:
        names = sorted(pending)
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        raise LoadError(f"checkpoint is missing tensors: {', '.join(names[:5])}{more}")

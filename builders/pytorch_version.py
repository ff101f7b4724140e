"""What every target that writes a pytorch-backend version shares: its config fields and its smoke test."""

from __future__ import annotations

from builders.owned_config import OwnedConfig
from builders.smoke import smoke_generate
from builders.target import BuildContext, Target


class PyTorchVersionTarget(Target):
    """A version served by `backend: "pytorch"`, checked by generating on Hangar's engine before the drop."""

    def validation(self) -> str:
        return "load it on Hangar's engine and generate greedily"

    def validate(self, ctx: BuildContext) -> None:
        result = smoke_generate(ctx.staging)
        ctx.reporter.info(f"  smoke test: {len(result.output_ids)} tokens generated: {result.text!r}")

    def owned_config(self) -> OwnedConfig:
        return OwnedConfig(backend="pytorch", decoupled=True)

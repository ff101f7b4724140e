"""A Target that writes given files: the smallest real plug-in, to exercise the drop pipeline itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from builders.errors import BuildFailed
from builders.owned_config import OwnedConfig
from builders.target import BuildContext, Step, Target

StepHook = Callable[[BuildContext], None]


class FileTarget(Target):
    """Step 1 writes `files` into the staging dir; step 2 runs `hook` (to fail, signal, interrupt)."""

    name = "files"

    def __init__(
        self,
        files: Mapping[str, bytes],
        *,
        hook: StepHook | None = None,
        invalid: str | None = None,
        owned: OwnedConfig | None = None,
    ) -> None:
        self.files = dict(files)
        self.hook = hook
        self.invalid = invalid
        self.owned = owned or OwnedConfig(backend="python")
        self.validated = 0

    def check(self) -> None:
        """Generated files: nothing to check."""

    def steps(self) -> list[Step]:
        return [Step("write the files", self._write), Step("run the hook", self._hook)]

    def _write(self, ctx: BuildContext) -> None:
        for name, data in self.files.items():
            path = ctx.staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (ctx.scratch_dir() / "intermediate").write_bytes(b"not part of the version")

    def _hook(self, ctx: BuildContext) -> None:
        if self.hook is not None:
            self.hook(ctx)

    def validate(self, ctx: BuildContext) -> None:
        self.validated += 1
        if self.invalid:
            raise BuildFailed(self.invalid)

    def owned_config(self) -> OwnedConfig:
        return self.owned

    def source(self) -> Mapping[str, Any]:
        return {"kind": "test"}

    def parameters(self) -> Mapping[str, Any]:
        return {"files": sorted(self.files)}

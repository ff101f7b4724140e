"""What a build tells its operator: plan and result lines on stdout, warnings and progress bars on stderr."""

from __future__ import annotations

import enum
import sys
from typing import Any, TextIO

from tqdm import tqdm


class ProgressMode(enum.Enum):
    AUTO = "auto"
    """Bars only when stderr is a terminal."""
    ON = "on"
    OFF = "off"


class Reporter:
    """Prints the build's lines and makes its progress bars (tqdm, disabled unless wanted)."""

    def __init__(
        self, mode: ProgressMode = ProgressMode.AUTO, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        isatty = getattr(self.err, "isatty", None)
        self.bars_enabled = mode is ProgressMode.ON or (
            mode is ProgressMode.AUTO and callable(isatty) and bool(isatty())
        )

    def info(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def warn(self, line: str) -> None:
        print(f"warning: {line}", file=self.err, flush=True)

    def bar(self, total: float | None, desc: str, *, unit: str = "step", byte_units: bool = False) -> Any:
        """A tqdm bar on stderr; a disabled one (every call a no-op) unless bars are enabled."""
        extra: dict[str, Any] = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if byte_units else {}
        return tqdm(
            total=total,
            desc=desc,
            unit=extra.pop("unit", unit),
            file=self.err,
            disable=not self.bars_enabled,
            leave=False,
            dynamic_ncols=True,
            **extra,
        )

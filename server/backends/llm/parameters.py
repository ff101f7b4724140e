"""config.pbtxt `parameters` (a string map) -> a backend's frozen dataclass: typed, checked, no unknowns."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from server.errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_parameters(cls: type[T], raw: Mapping[str, str], backend: str) -> T:
    """Build `cls` (a frozen dataclass) from `parameters`; an empty value means "use the default".

    Raises:
        ConfigError: unknown keys (listing the valid ones), unfilled `${...}` template placeholders,
            or a value that does not parse as the field's type; `cls` may raise it for ranges too.
    """
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown {backend} parameter(s) {', '.join(unknown)}; "
            f"valid parameters: {', '.join(sorted(names))}"
        )
    unfilled = sorted(k for k, v in raw.items() if "${" in v)
    if unfilled:
        shown = ", ".join(f"{k}={raw[k]!r}" for k in unfilled)
        raise ConfigError(
            f"{backend} parameter(s) still hold template placeholders: {shown}; fill them in "
            f"(e.g. with fill_template.py) or delete the parameter to use its default"
        )
    values = {k: _convert(k, v.strip(), hints[k]) for k, v in raw.items() if v.strip()}
    return cls(**values)


def _convert(key: str, value: str, hint: Any) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return tuple(_convert(key, part.strip(), args[0]) for part in value.split(",") if part.strip())
    if hint is bool:
        lowered = value.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"parameter {key}: expected true or false, got {value!r}")
    if hint in (int, float):
        try:
            return hint(value)
        except ValueError:
            kind = "an integer" if hint is int else "a number"
            raise ConfigError(f"parameter {key}: expected {kind}, got {value!r}") from None
    return value


def require(condition: bool, message: str) -> None:
    """Range checks in a parameters dataclass's __post_init__."""
    if not condition:
        raise ConfigError(message)

"""RepositoryModelLoad parameters: the `config` override and `file:` contents, written to a fresh temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from server.errors import InvalidInput, LoadError
from server.repository.layout import parse_version_name

LoadParameter = bool | int | str | bytes
FILE_PREFIX = "file:"


def _param_type(value: object) -> str:
    """The ModelRepositoryParameter field a value arrived in."""
    if isinstance(value, bool):
        return "bool_param"
    if isinstance(value, int):
        return "int64_param"
    if isinstance(value, str):
        return "string_param"
    if isinstance(value, bytes | bytearray):
        return "bytes_param"
    return type(value).__name__


@dataclass(frozen=True)
class LoadOverrides:
    config_json: str | None = None
    files: Mapping[PurePosixPath, bytes] = field(default_factory=dict)
    """Relative paths (`<version>/<path>`) inside the override model dir."""


def _check_file_path(key: str) -> PurePosixPath:
    rel = key[len(FILE_PREFIX) :]
    problem = ""
    if not rel:
        problem = "the path is empty"
    elif rel.startswith("/") or "\\" in rel or "\x00" in rel or (len(rel) > 1 and rel[1] == ":"):
        problem = "absolute paths, backslashes and NUL are not allowed"
    else:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            problem = "empty, '.' and '..' path components are not allowed"
        elif len(parts) < 2 or parse_version_name(parts[0]) is None:
            problem = "expected 'file:<version>/<path>' with a positive integer version"
    if problem:
        raise InvalidInput(f"invalid load parameter '{key}': {problem}")
    return PurePosixPath(rel)


def parse_load_parameters(parameters: Mapping[str, LoadParameter]) -> LoadOverrides:
    """Validate RepositoryModelLoad parameters; nothing is written here.

    Raises:
        InvalidInput: an unknown key, a wrong type, an unsafe file path, or files without `config`.
    """
    config_json: str | None = None
    files: dict[PurePosixPath, bytes] = {}
    for key, value in parameters.items():
        if key == "config":
            if not isinstance(value, str):
                raise InvalidInput(
                    f"load parameter 'config' must be a string_param, got {_param_type(value)}"
                )
            config_json = value
        elif key.startswith(FILE_PREFIX):
            path = _check_file_path(key)
            if not isinstance(value, bytes | bytearray):
                raise InvalidInput(f"load parameter '{key}' must be a bytes_param, got {_param_type(value)}")
            files[path] = bytes(value)
        else:
            raise InvalidInput(
                f"unrecognized load parameter '{key}' of type {_param_type(value)} "
                f"(expected 'config' or 'file:<version>/<path>')"
            )
    if files and config_json is None:
        raise InvalidInput("'file:' load parameters require a 'config' load parameter")
    paths = set(files)
    for path in paths:
        clash = next((p for p in path.parents if p in paths), None)
        if clash is not None:
            raise InvalidInput(
                f"load parameter 'file:{clash}' is a file but 'file:{path}' needs it as a directory"
            )
    return LoadOverrides(config_json, files)


class OverrideDir:
    """A temporary model dir holding `file:` overrides; removed when its last loaded version is unloaded."""

    def __init__(self, root: Path, model_dir: Path) -> None:
        self.root = root
        self.model_dir = model_dir
        self._refs = 1
        self._lock = threading.Lock()

    def retain(self) -> None:
        with self._lock:
            self._refs += 1

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            last = self._refs == 0
        if last:
            shutil.rmtree(self.root, ignore_errors=True)


def _write_file(model_dir: Path, rel: PurePosixPath, data: bytes) -> None:
    target = model_dir.joinpath(*rel.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.parent.resolve().is_relative_to(model_dir.resolve()):
        raise LoadError(f"override path '{rel}' leaves the override directory")
    # O_EXCL + O_NOFOLLOW: never write through a link or over a file already there.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_override_dir(name: str, files: Mapping[PurePosixPath, bytes]) -> OverrideDir:
    """Write `files` into a FRESH temporary `<tmp>/<name>/` dir. Blocking.

    Raises:
        LoadError: a file cannot be written (nothing is left behind).
    """
    root = Path(tempfile.mkdtemp(prefix="hangar-override-"))
    model_dir = root / name
    try:
        model_dir.mkdir()
        for rel, data in sorted(files.items()):
            _write_file(model_dir, rel, data)
    except (OSError, ValueError, LoadError) as e:
        shutil.rmtree(root, ignore_errors=True)
        raise LoadError(f"cannot write load override files for model '{name}': {e}") from None
    return OverrideDir(root, model_dir)

"""ModelModule: a model's `model.py` imported as a module of its own, with its TritonPythonModel class."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from server.errors import LoadError

_ids = itertools.count()
_path_lock = threading.Lock()
_path_users: Counter[str] = Counter()


@dataclass(frozen=True)
class ModelModule:
    """One import of a model file; each instance gets its own, as each Triton stub process would."""

    module_name: str
    path: Path
    model_class: type

    def unload(self) -> None:
        sys.modules.pop(self.module_name, None)


def import_model(path: Path, label: str) -> ModelModule:
    """Import `path` under a unique module name.

    Raises:
        LoadError: the file is missing, fails to import, or defines no TritonPythonModel class.
    """
    if not path.is_file():
        raise LoadError(f"Python model file {path} not found")
    name = f"_hangar_model_{re.sub(r'[^0-9A-Za-z_]', '_', label)}_{next(_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling inside model.py look themselves up here
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # a model's import-time SystemExit must not stop the server either
        sys.modules.pop(name, None)
        raise LoadError(f"failed to import {path}: {type(e).__name__}: {e}") from e
    model_class = getattr(module, "TritonPythonModel", None)
    if not isinstance(model_class, type):
        sys.modules.pop(name, None)
        raise LoadError(f"{path} does not define a class named TritonPythonModel")
    return ModelModule(name, path, model_class)


def add_search_path(directory: Path) -> None:
    """Put a version directory on sys.path (as Triton's stub does) so model.py can import its neighbours."""
    key = str(directory)
    with _path_lock:
        if _path_users[key] == 0 and key not in sys.path:
            sys.path.append(key)
        _path_users[key] += 1


def remove_search_path(directory: Path) -> None:
    key = str(directory)
    with _path_lock:
        _path_users[key] -= 1
        if _path_users[key] <= 0:
            del _path_users[key]
            if key in sys.path:
                sys.path.remove(key)

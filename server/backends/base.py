"""The Backend plug point: what every model implementation provides, and the registry that finds them."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.errors import LoadError
from server.repository.model_config import ModelConfig
from server.stats import ModelStats
from server.types import InferRequest, InferResponse


@dataclass(frozen=True)
class ModelVersionSpec:
    """Everything a backend is given to load one version of a model."""

    name: str
    version: int
    config: ModelConfig
    model_dir: Path
    """`<repository>/<model>` (or a temporary override directory for `file:` loads)."""
    version_dir: Path
    """`<model_dir>/<version>`."""
    stats: ModelStats = field(default_factory=ModelStats)


class Backend(ABC):
    """One loaded model version. Created by the manager, loaded on a worker thread, served on the loop.

    Life cycle: `auto_complete_config` (class method, before construction) -> `__init__` -> `load()`
    (blocking, off the event loop) -> `infer()` many times, concurrently -> `unload()` (blocking).
    """

    def __init__(self, spec: ModelVersionSpec) -> None:
        self.spec = spec

    @classmethod
    def auto_complete_config(cls, config: ModelConfig, model_dir: Path) -> ModelConfig:
        """Fill in what the backend can derive (inputs/outputs of LLM contracts); default: unchanged.

        Raises:
            ConfigError: the config is invalid for this backend (unknown parameter keys, ...).
        """
        return config

    @abstractmethod
    def load(self) -> None:
        """Load weights / start workers. Blocking; runs on a worker thread.

        Raises:
            LoadError (or any exception): the version becomes UNAVAILABLE with this reason.
        """

    @abstractmethod
    def infer(self, request: InferRequest) -> AsyncIterator[InferResponse]:
        """Serve one request: an async iterator of responses, the last with `final=True`.

        Called on the event loop; must never block it. Non-decoupled models yield exactly one response.
        A failure of this request is yielded as a response with `error` set (or raised as HangarError);
        it must never affect other requests. `request.cancel` is set when the client cancels.
        """

    def infer_unary(self, request: InferRequest) -> InferResponse | AsyncIterator[InferResponse]:
        """`infer` for a unary call: a backend that can answer at once may return the final response
        itself rather than an iterator over it (the unary fast path); by default, `infer(request)`."""
        return self.infer(request)

    def unload(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        """Release resources. Blocking; called once after in-flight requests have drained."""

    @property
    def ready(self) -> bool:
        """False once the backend can no longer serve (e.g. its engine thread died)."""
        return True

    def engine_stats(self) -> Any | None:
        """LLM backends return their latest `server.engine.stats.SchedulerStats`; others None."""
        return None


BackendFactory = Callable[[], type[Backend]]

# Lazy: the module is imported only when a model asks for the backend, so a missing optional
# dependency (onnxruntime, tensorrt_llm) only makes that model UNAVAILABLE.
_BUILTIN: dict[str, str] = {
    "python": "server.backends.python.backend:PythonBackend",
    "onnxruntime": "server.backends.onnxruntime.backend:OnnxRuntimeBackend",
    "pytorch": "server.backends.pytorch.backend:PyTorchBackend",
    "tensorrtllm": "server.backends.tensorrtllm.backend:TensorRTLLMBackend",
}


class BackendRegistry:
    """Maps a backend name to its class; built-ins are imported lazily on first use."""

    def __init__(self, entries: dict[str, str] | None = None) -> None:
        self._paths: dict[str, str] = dict(_BUILTIN if entries is None else entries)
        self._classes: dict[str, type[Backend]] = {}

    def register(self, name: str, cls: type[Backend]) -> None:
        self._classes[name] = cls

    def names(self) -> list[str]:
        return sorted(set(self._paths) | set(self._classes))

    def get(self, name: str) -> type[Backend]:
        if name in self._classes:
            return self._classes[name]
        path = self._paths.get(name)
        if path is None:
            known = ", ".join(self.names())
            raise LoadError(f"unknown backend '{name}' (known backends: {known})")
        module_name, _, attr = path.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except ImportError as e:
            raise LoadError(f"backend '{name}' is not available: {e}") from e
        self._classes[name] = cls
        return cls

"""A fixture backend for manager tests: records loads, unloads and infer calls; loads can block or fail.

Behaviour comes from the model's files so that editing them in a test changes it:
- config `parameters { key: "marker" ... }` is echoed in every response (tells instances apart);
- config `parameters { key: "fail_load" ... }` or a `FAIL` file in the version dir makes `load` raise;
- a gate registered with `Probe.gate(name, version)` blocks `load` until the test opens it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from server.backends.base import Backend, BackendRegistry
from server.types import DataType, InferRequest, InferResponse, Tensor

WAIT_S = 10.0


@dataclass
class Probe:
    """What every ProbeBackend instance of one test did."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    loads: list[tuple[str, int, str]] = field(default_factory=list)
    """(name, version, marker) of every successful load, in order."""
    unloads: list[tuple[str, int, str]] = field(default_factory=list)
    infer_calls: Counter[tuple[str, int]] = field(default_factory=Counter)
    load_threads: list[str] = field(default_factory=list)
    model_dirs: list[Path] = field(default_factory=list)
    gates: dict[tuple[str, int], threading.Event] = field(default_factory=dict)
    started: dict[tuple[str, int], threading.Event] = field(default_factory=dict)
    active_loads: int = 0
    max_active_loads: int = 0
    unloaded_event: threading.Event = field(default_factory=threading.Event)

    def gate(self, name: str, version: int) -> threading.Event:
        """Block loads of (name, version) until the returned event is set."""
        self.started[(name, version)] = threading.Event()
        return self.gates.setdefault((name, version), threading.Event())

    async def wait_started(self, name: str, version: int) -> None:
        ok = await asyncio.to_thread(self.started[(name, version)].wait, WAIT_S)
        assert ok, f"load of {name} v{version} never started"

    def markers_loaded(self, name: str) -> list[tuple[int, str]]:
        return [(v, m) for n, v, m in self.loads if n == name]

    def unloaded(self, name: str) -> list[tuple[int, str]]:
        return [(v, m) for n, v, m in self.unloads if n == name]


class ProbeBackend(Backend):
    probe: Probe

    @property
    def _key(self) -> tuple[str, int]:
        return (self.spec.name, self.spec.version)

    @property
    def marker(self) -> str:
        return self.spec.config.parameters.get("marker", "")

    def load(self) -> None:
        p = self.probe
        with p.lock:
            p.active_loads += 1
            p.max_active_loads = max(p.max_active_loads, p.active_loads)
            p.load_threads.append(threading.current_thread().name)
            p.model_dirs.append(self.spec.model_dir)
        try:
            started = p.started.get(self._key)
            if started is not None:
                started.set()
            gate = p.gates.get(self._key)
            if gate is not None:
                assert gate.wait(WAIT_S), "test never opened the load gate"
            failure = self.spec.config.parameters.get("fail_load")
            if failure:
                raise RuntimeError(failure)
            if (self.spec.version_dir / "FAIL").exists():
                raise RuntimeError((self.spec.version_dir / "FAIL").read_text())
        finally:
            with p.lock:
                p.active_loads -= 1
        with p.lock:
            p.loads.append((*self._key, self.marker))

    async def infer(self, request: InferRequest) -> AsyncIterator[InferResponse]:
        with self.probe.lock:
            self.probe.infer_calls[self._key] += 1
        if self.spec.config.parameters.get("fail_infer"):
            raise RuntimeError("infer failed on purpose")
        marker = np.array([self.marker.encode()], dtype=object)
        yield InferResponse(
            request.model_name,
            str(self.spec.version),
            request.id,
            outputs=[Tensor("marker", DataType.BYTES, marker), *request.inputs.values()],
        )

    def unload(self) -> None:
        with self.probe.lock:
            self.probe.unloads.append((*self._key, self.marker))
        self.probe.unloaded_event.set()


def probe_registry(probe: Probe, *names: str) -> BackendRegistry:
    """A registry with no built-ins: `probe` and any extra `names` map to a ProbeBackend bound to `probe`."""
    cls = type("BoundProbeBackend", (ProbeBackend,), {"probe": probe})
    registry = BackendRegistry(entries={})
    for name in ("probe", *names):
        registry.register(name, cls)
    return registry

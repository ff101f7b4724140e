"""A startup interrupted while models load still unloads the models that had finished loading."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from server.app.lifecycle import manager_config
from server.app.server import HangarServer
from server.repository.manager import ModelManager
from tests.support.server import make_config
from tests.unit.repository.model_dirs import eventually, run, write_model
from tests.unit.repository.probe_backend import Probe, probe_registry


def test_cancelled_startup_unloads_what_already_loaded(tmp_path: Path) -> None:
    probe = Probe()
    write_model(tmp_path, "fast")
    write_model(tmp_path, "slow")
    slow_gate = probe.gate("slow", 1)

    async def scenario() -> None:
        config = make_config(tmp_path)
        server = HangarServer(config, ModelManager(manager_config(config), probe_registry(probe)))
        start = asyncio.create_task(server.start())
        await probe.wait_started("slow", 1)
        await eventually(lambda: ("fast", 1, "") in probe.loads, "fast loaded")
        start.cancel()  # what a SIGTERM during startup does to the start task
        slow_gate.set()  # let the abandoned load's thread finish
        with contextlib.suppress(asyncio.CancelledError):
            await start
        await eventually(lambda: ("fast", 1, "") in probe.unloads, "fast unloaded")

    run(scenario())

"""Explicit control: load (with overrides), reload without a gap, unload with draining, shutdown."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from server.errors import InvalidInput, LoadError, StatusKind, Unavailable
from server.repository.manager import IndexEntry, ModelManager
from tests.unit.repository.model_dirs import config_text, eventually, run, write_model, write_version
from tests.unit.repository.probe_backend import Probe

MakeManager = Callable[..., ModelManager]


def _override(marker: str, **params: str) -> str:
    all_params = {"marker": marker, **params}
    return json.dumps(
        {"backend": "probe", "parameters": {k: {"string_value": v} for k, v in all_params.items()}}
    )


@pytest.mark.parametrize("mode", ["none", "poll"])
def test_load_and_unload_are_refused_outside_explicit_mode(
    repo: Path, make_manager: MakeManager, mode: str
) -> None:
    write_model(repo, "a")

    async def scenario() -> None:
        manager = make_manager(mode=mode)
        await manager.start()
        with pytest.raises(Unavailable, match=mode):
            await manager.load("a", {})
        with pytest.raises(Unavailable):
            await manager.unload("a")
        await manager.shutdown(1.0)

    run(scenario())


def test_load_unload_and_index_reasons(repo: Path, probe: Probe, make_manager: MakeManager) -> None:
    write_model(repo, "a", versions=(1, 2), marker="file")

    async def scenario() -> None:
        manager = make_manager(mode="explicit")
        await manager.start()
        assert not manager.model_ready("a")
        await manager.load("a", {})
        assert manager.index() == [IndexEntry("a", "2", "READY", "")]
        await manager.unload("a")
        assert manager.index() == [IndexEntry("a", "2", "UNAVAILABLE", "unloaded")]
        assert not manager.model_ready("a")
        await manager.unload("a")  # unloading again is a no-op
        await manager.unload("never_loaded")
        await manager.load("a", {})
        assert manager.model_ready("a")
        await manager.shutdown(1.0)

    run(scenario())
    assert probe.markers_loaded("a") == [(2, "file"), (2, "file")]
    assert probe.unloaded("a") == [(2, "file"), (2, "file")]


def test_unknown_model_and_bad_override_fail_with_internal_and_the_server_stays_up(
    repo: Path, make_manager: MakeManager
) -> None:
    write_model(repo, "a")

    async def scenario() -> None:
        manager = make_manager(mode="explicit", startup_models=("a",))
        await manager.start()
        with pytest.raises(LoadError, match="no model directory 'ghost'") as e:
            await manager.load("ghost", {})
        assert e.value.kind is StatusKind.INTERNAL
        with pytest.raises(LoadError, match="malformed JSON"):
            await manager.load("a", {"config": "{not json"})
        with pytest.raises(LoadError, match="'other'"):
            await manager.load("a", {"config": json.dumps({"name": "other", "backend": "probe"})})
        with pytest.raises(InvalidInput, match="'colour'"):
            await manager.load("a", {"colour": "red"})
        assert manager.model_ready("a") and manager.server_ready
        assert [e.name for e in manager.index()] == ["a"], "a failed load of an unknown model adds no entry"
        await manager.shutdown(1.0)

    run(scenario())


def test_config_override_applies_to_one_load_and_a_later_plain_load_reverts(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    write_model(repo, "a", marker="file")

    async def scenario() -> None:
        manager = make_manager(mode="explicit", startup_models=("a",))
        await manager.start()
        await manager.load("a", {"config": _override("json")})
        assert manager.config("a").parameters["marker"] == "json"
        await manager.load("a", {})
        assert manager.config("a").parameters["marker"] == "file"
        await manager.shutdown(1.0)

    run(scenario())
    assert probe.markers_loaded("a") == [(1, "file"), (1, "json"), (1, "file")]


def test_failed_reload_keeps_the_previous_version_serving(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    write_model(repo, "a", marker="good")

    async def scenario() -> None:
        manager = make_manager(mode="explicit", startup_models=("a",))
        await manager.start()
        with pytest.raises(LoadError, match="broken weights"):
            await manager.load("a", {"config": _override("bad", fail_load="broken weights")})
        with manager.acquire("a") as handle:
            assert handle.config.parameters["marker"] == "good"
        [entry] = manager.index()
        assert entry.state == "READY" and "broken weights" in entry.reason and "still serving" in entry.reason
        assert manager.server_ready
        assert probe.unloaded("a") == [(1, "bad")], "only the failed instance is cleaned up"
        await manager.load("a", {})
        assert manager.index() == [IndexEntry("a", "1", "READY", "")]
        await manager.shutdown(1.0)

    run(scenario())
    assert probe.unloaded("a") == [(1, "bad"), (1, "good"), (1, "good")]


def test_file_overrides_load_from_a_fresh_temp_dir_removed_after_unload(
    repo: Path, probe: Probe, make_manager: MakeManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_model(repo, "a", marker="file")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    async def scenario() -> None:
        manager = make_manager(mode="explicit")
        await manager.start()
        params = {
            "config": _override("files"),
            "file:3/model.bin": b"\x00weights",
            "file:3/sub/t.json": b"{}",
        }
        await manager.load("a", params)
        with manager.acquire("a") as handle:
            assert handle.version == 3
        model_dir = probe.model_dirs[-1]
        assert model_dir.is_relative_to(scratch) and model_dir.name == "a"
        assert (model_dir / "3" / "model.bin").read_bytes() == b"\x00weights"
        await manager.unload("a")
        assert list(scratch.iterdir()) == []
        with pytest.raises(InvalidInput):
            await manager.load("a", {"config": _override("x"), "file:1/../../escape": b"x"})
        assert list(scratch.iterdir()) == [], "nothing is written for an invalid override"
        await manager.shutdown(1.0)

    run(scenario())


def test_unload_drains_in_flight_requests_before_backend_unload(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    write_model(repo, "a")

    async def scenario() -> None:
        manager = make_manager(mode="explicit", startup_models=("a",))
        await manager.start()
        handle = manager.acquire("a")
        unloading = asyncio.ensure_future(manager.unload("a"))
        await eventually(lambda: manager.index()[0].state == "UNLOADING", "UNLOADING state")
        assert not manager.model_ready("a")
        assert probe.unloads == [], "unload must wait for the in-flight request"
        assert [v.name for v in manager.loaded_versions()] == ["a"], "draining versions still report stats"
        handle.release()
        handle.release()  # idempotent
        await unloading
        assert probe.unloads == [("a", 1, "")]
        assert manager.index() == [IndexEntry("a", "1", "UNAVAILABLE", "unloaded")]
        assert manager.loaded_versions() == []
        await manager.shutdown(1.0)

    run(scenario())


def test_reload_swaps_without_a_gap_and_old_unloads_after_release(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    write_model(repo, "a", marker="v-old")

    async def scenario() -> None:
        manager = make_manager(mode="explicit", startup_models=("a",))
        await manager.start()
        old = manager.acquire("a")
        gate = probe.gate("a", 1)
        reload = asyncio.ensure_future(manager.load("a", {"config": _override("v-new")}))
        await probe.wait_started("a", 1)
        with manager.acquire("a") as during:  # still served by the old instance while the new one loads
            assert during.config.parameters["marker"] == "v-old"
        gate.set()
        await reload
        with manager.acquire("a") as after:
            assert after.config.parameters["marker"] == "v-new"
        assert probe.unloads == []
        old.release()
        await eventually(lambda: probe.unloads == [("a", 1, "v-old")], "old instance unloaded")
        await manager.shutdown(1.0)

    run(scenario())


def test_load_thread_count_bounds_concurrent_loads(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    names = ("a", "b", "c")
    for name in names:
        write_model(repo, name)
    gates = {name: probe.gate(name, 1) for name in names}

    async def scenario() -> None:
        manager = make_manager(load_thread_count=2)
        starting = asyncio.ensure_future(manager.start())
        await eventually(lambda: probe.active_loads == 2, "two loads running")
        waiting = [n for n in names if not probe.started[(n, 1)].is_set()]
        assert len(waiting) == 1, "the third load must wait for a free load slot"
        for name in names:
            gates[name].set()
        await starting
        assert manager.server_ready
        await manager.shutdown(1.0)

    run(scenario())
    assert probe.max_active_loads == 2


def test_shutdown_waits_for_in_flight_up_to_the_timeout_then_unloads(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    write_model(repo, "a")
    write_model(repo, "b")

    async def scenario() -> None:
        manager = make_manager()
        await manager.start()
        held_a = manager.acquire("a")
        held_b = manager.acquire("b")
        closing = asyncio.ensure_future(manager.shutdown(0.2))
        await eventually(lambda: not manager.model_ready("b"), "b stops taking requests")
        held_b.release()
        await eventually(lambda: ("b", 1, "") in probe.unloads, "b unloaded once drained")
        assert ("a", 1, "") not in probe.unloads
        await closing  # a is still held: unloaded anyway once the timeout passes
        assert sorted(probe.unloads) == [("a", 1, ""), ("b", 1, "")]
        held_a.release()
        with pytest.raises(Unavailable):
            await manager.load("a", {})

    run(scenario())


def test_explicit_load_of_a_failing_model_raises_the_reason(repo: Path, make_manager: MakeManager) -> None:
    """An explicit load of a model whose only version fails raises LoadError naming the reason."""
    write_model(repo, "m", config=config_text(fail_load="nope"))

    async def scenario() -> None:
        manager = make_manager(mode="explicit")
        await manager.start()
        with pytest.raises(LoadError, match="nope"):
            await manager.load("m", {})
        assert manager.index()[0].state == "UNAVAILABLE"
        await manager.shutdown(1.0)

    run(scenario())


def test_a_cancelled_load_unloads_the_backend_once_its_thread_finishes(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    write_model(repo, "a")

    async def scenario() -> None:
        manager = make_manager(mode="explicit")
        await manager.start()
        gate = probe.gate("a", 1)
        loading = asyncio.ensure_future(manager.load("a", {}))
        await probe.wait_started("a", 1)
        loading.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await loading
        await eventually(lambda: probe.unloads == [("a", 1, "")], "the orphaned backend unloaded")
        assert manager.index() == [IndexEntry("a", "1", "UNAVAILABLE", "the load was cancelled")]
        await manager.load("a", {})
        assert manager.model_ready("a")
        await manager.shutdown(1.0)

    run(scenario())


def test_poll_once_ignores_repository_changes_outside_poll_mode(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "a")

    async def scenario() -> None:
        manager = make_manager(mode="none")
        await manager.start()
        write_version(model, 2)
        await manager.poll_once()
        await manager.poll_once()
        assert manager.ready_versions("a") == [1]
        await manager.shutdown(1.0)

    run(scenario())

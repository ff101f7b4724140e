"""Poll mode: stable-only loading, hot swap with draining, removal, config edits, surviving failures."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from server.repository.manager import IndexEntry, ModelManager
from tests.unit.repository.model_dirs import (
    config_text,
    eventually,
    run,
    write_config,
    write_model,
    write_version,
)
from tests.unit.repository.probe_backend import Probe

MakeManager = Callable[..., ModelManager]


async def _poll_mode(make_manager: MakeManager, **kw: object) -> ModelManager:
    manager = make_manager(mode="poll", **kw)
    await manager.start()
    return manager


def test_new_version_loads_only_once_stable_and_old_unloads_after_its_requests(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "m", versions=(1,))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        in_flight = manager.acquire("m")
        write_version(model, 2, "new weights")

        await manager.poll_once()
        assert manager.acquire("m").version == 1, "a new dir is not loaded on the poll that first sees it"
        assert probe.markers_loaded("m") == [(1, "")]

        await manager.poll_once()
        with manager.acquire("m") as handle:
            assert handle.version == 2
        assert manager.index() == [IndexEntry("m", "1", "UNLOADING", ""), IndexEntry("m", "2", "READY", "")]
        assert probe.unloads == [], "v1 still has a request in flight"
        in_flight.release()
        await eventually(lambda: probe.unloads == [("m", 1, "")], "v1 unloaded after draining")
        assert manager.index() == [
            IndexEntry("m", "1", "UNAVAILABLE", "unloaded"),
            IndexEntry("m", "2", "READY", ""),
        ]
        await manager.shutdown(1.0)

    run(scenario())


def test_a_version_dir_still_being_written_waits_until_two_polls_agree(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "m", versions=(1,))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        vdir = write_version(model, 2, "part 1")
        for i in range(3):
            await manager.poll_once()
            (vdir / f"shard{i}.bin").write_bytes(b"x" * (i + 1))
            assert manager.ready_versions("m") == [1]
        await manager.poll_once()
        assert manager.ready_versions("m") == [1], "changed since the previous poll"
        await manager.poll_once()
        assert manager.ready_versions("m") == [2]
        await manager.shutdown(1.0)

    run(scenario())
    assert probe.markers_loaded("m") == [(1, ""), (2, "")]


def test_atomic_drop_from_a_hidden_staging_dir(repo: Path, probe: Probe, make_manager: MakeManager) -> None:
    model = write_model(repo, "m", versions=(1,))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        staging = write_version(model, ".staging-2", "being written")
        await manager.poll_once()
        await manager.poll_once()
        assert manager.ready_versions("m") == [1], "hidden staging dirs are ignored"
        os.rename(staging, model / "2")
        await manager.poll_once()
        await manager.poll_once()
        assert manager.ready_versions("m") == [2]
        await manager.shutdown(1.0)

    run(scenario())


def test_failed_new_version_keeps_the_old_one_serving_and_is_not_retried_until_changed(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "m", versions=(1,))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        vdir = write_version(model, 2)
        (vdir / "FAIL").write_text("corrupt shard")
        await manager.poll_once()
        await manager.poll_once()
        assert manager.acquire("m").version == 1
        entries = manager.index()
        assert entries[0] == IndexEntry("m", "1", "READY", "")
        assert (
            entries[1].version == "2"
            and entries[1].state == "UNAVAILABLE"
            and "corrupt shard" in entries[1].reason
        )
        attempts = len(probe.load_threads)
        await manager.poll_once()
        await manager.poll_once()
        assert len(probe.load_threads) == attempts, "the same failing files are not reloaded every poll"
        (vdir / "FAIL").unlink()
        await manager.poll_once()
        await manager.poll_once()
        assert manager.ready_versions("m") == [2]
        await eventually(lambda: ("m", 1, "") in probe.unloads, "v1 unloaded once v2 serves")
        await manager.shutdown(1.0)

    run(scenario())


def test_removed_version_dir_is_unloaded_and_the_next_highest_serves(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "m", versions=(1, 2), config=config_text(extra="version_policy { all {} }"))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        assert manager.acquire("m").version == 2
        shutil.rmtree(model / "2")
        await manager.poll_once()
        with manager.acquire("m") as handle:
            assert handle.version == 1
        await eventually(lambda: ("m", 2, "") in probe.unloads, "v2 unloaded")
        await manager.shutdown(1.0)

    run(scenario())


def test_config_edit_reloads_every_served_version_then_drains_the_old_ones(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(
        repo, "m", versions=(1, 2), config=config_text(marker="a", extra="version_policy { all {} }")
    )

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        held = manager.acquire("m", "1")
        write_config(model, config_text(marker="b", extra="version_policy { all {} }"))
        await manager.poll_once()
        assert manager.config("m").parameters["marker"] == "a", "a config edit waits one poll to settle"
        await manager.poll_once()
        assert manager.config("m", "1").parameters["marker"] == "b"
        assert manager.config("m", "2").parameters["marker"] == "b"
        await eventually(lambda: ("m", 2, "a") in probe.unloads, "old v2 unloaded")
        assert ("m", 1, "a") not in probe.unloads, "old v1 still has a request in flight"
        held.release()
        await eventually(lambda: ("m", 1, "a") in probe.unloads, "old v1 unloaded after release")
        assert [e.state for e in manager.index()] == ["READY", "READY"]
        await manager.shutdown(1.0)

    run(scenario())
    assert sorted(probe.markers_loaded("m")) == [(1, "a"), (1, "b"), (2, "a"), (2, "b")]


def test_broken_config_edit_keeps_serving_and_shows_the_reason(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "m", marker="a")

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        write_config(model, "backend: {{ broken\n")
        await manager.poll_once()
        await manager.poll_once()
        [entry] = manager.index()
        assert entry.state == "READY" and "failed to parse" in entry.reason
        assert manager.model_ready("m")
        write_config(model, config_text(marker="c"))
        await manager.poll_once()
        await manager.poll_once()
        assert manager.config("m").parameters["marker"] == "c"
        assert manager.index() == [IndexEntry("m", "1", "READY", "")]
        await manager.shutdown(1.0)

    run(scenario())


def test_model_dirs_added_and_removed(repo: Path, probe: Probe, make_manager: MakeManager) -> None:
    write_model(repo, "keep")
    gone = write_model(repo, "gone")

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        held = manager.acquire("gone")
        shutil.rmtree(gone)
        write_model(repo, "fresh")
        await manager.poll_once()
        assert not manager.model_ready("gone")
        assert [e.name for e in manager.index()] == ["fresh", "keep"]
        assert manager.index()[0] == IndexEntry("fresh", "", "", "")
        assert [v.name for v in manager.loaded_versions()] == ["gone", "keep"], "gone is draining"
        held.release()
        await eventually(lambda: ("gone", 1, "") in probe.unloads, "removed model unloaded")
        await manager.poll_once()
        assert manager.model_ready("fresh")
        assert manager.server_ready
        await manager.shutdown(1.0)

    run(scenario())


def test_duplicate_appearing_later_makes_that_model_unavailable(
    tmp_path: Path, probe: Probe, make_manager: MakeManager
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_model(a, "m")
    write_model(a, "other")
    b.mkdir()

    async def scenario() -> None:
        manager = await _poll_mode(make_manager, repositories=(a, b))
        write_model(b, "m")
        await manager.poll_once()
        assert not manager.model_ready("m") and manager.model_ready("other")
        await eventually(lambda: ("m", 1, "") in probe.unloads, "duplicate unloaded")
        [entry] = [e for e in manager.index() if e.name == "m"]
        assert entry.state == "UNAVAILABLE" and "two or more repositories" in entry.reason
        assert not manager.server_ready
        shutil.rmtree(b / "m")
        await manager.poll_once()
        await manager.poll_once()
        assert manager.model_ready("m")
        await manager.shutdown(1.0)

    run(scenario())


def test_polling_survives_exceptions_anywhere(
    repo: Path, probe: Probe, make_manager: MakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_model(repo, "m", versions=(1,))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        hidden = repo.with_name("moved")
        repo.rename(hidden)
        await manager.poll_once()  # the repository vanished: logged, nothing unloaded
        hidden.rename(repo)
        assert manager.model_ready("m")

        def explode(*_: object, **__: object) -> object:
            raise RuntimeError("bug in a backend's auto-complete")

        monkeypatch.setattr("server.repository.poller.resolve_config", explode)
        write_version(model, 2)
        await manager.poll_once()
        await manager.poll_once()
        assert manager.ready_versions("m") == [1]
        assert "bug in a backend" in manager.index()[0].reason
        monkeypatch.undo()
        write_version(model, 3)
        await manager.poll_once()
        await manager.poll_once()
        assert manager.ready_versions("m") == [3]
        await manager.shutdown(1.0)

    run(scenario())


def test_the_poll_loop_picks_up_changes_on_its_own(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "m", versions=(1,))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager, poll_interval_s=0.01)
        write_version(model, 2)
        await eventually(lambda: manager.ready_versions("m") == [2], "the poller loading v2")
        await manager.shutdown(1.0)

    run(scenario())
    assert ("m", 2, "") in probe.unloads


def test_index_shows_loading_while_a_new_version_loads_and_requests_keep_flowing(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    model = write_model(repo, "m", versions=(1,))

    async def scenario() -> None:
        manager = await _poll_mode(make_manager)
        write_version(model, 2)
        await manager.poll_once()
        gate = probe.gate("m", 2)
        polling = asyncio.ensure_future(manager.poll_once())
        await probe.wait_started("m", 2)
        assert manager.index() == [IndexEntry("m", "1", "READY", ""), IndexEntry("m", "2", "LOADING", "")]
        with manager.acquire("m") as handle:
            assert handle.version == 1, "the loop keeps serving the old version during the load"
        assert manager.server_ready
        gate.set()
        await polling
        assert manager.acquire("m").version == 2
        await manager.shutdown(1.0)

    run(scenario())

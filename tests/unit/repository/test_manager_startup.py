"""ModelManager startup, lookups, index and readiness."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from server.errors import ConfigError, InvalidInput, ModelNotFound, ModelNotReady, StatusKind
from server.repository.manager import ControlMode, IndexEntry, ManagerConfig, ModelManager
from server.types import InferRequest
from tests.unit.repository.model_dirs import config_text, run, write_model
from tests.unit.repository.probe_backend import Probe

MakeManager = Callable[..., ModelManager]


async def _started(make_manager: MakeManager, **kw: object) -> ModelManager:
    manager = make_manager(**kw)
    await manager.start()
    return manager


def test_none_mode_loads_every_model_and_serves_the_highest_version(
    repo: Path, probe: Probe, make_manager: MakeManager
) -> None:
    write_model(
        repo,
        "a",
        versions=(1, 2, 3),
        config=config_text(extra="version_policy { latest { num_versions: 2 } }"),
    )
    write_model(repo, "b", versions=(1,))

    async def scenario() -> None:
        manager = await _started(make_manager)
        assert manager.index() == [
            IndexEntry("a", "2", "READY", ""),
            IndexEntry("a", "3", "READY", ""),
            IndexEntry("b", "1", "READY", ""),
        ]
        with manager.acquire("a") as handle:
            assert (handle.name, handle.version) == ("a", 3)
        with manager.acquire("a", "2") as handle:
            assert handle.version == 2
        assert manager.ready_versions("a") == [2, 3]
        assert manager.server_ready
        assert manager.model_ready("a") and manager.model_ready("a", "2")
        assert (
            not manager.model_ready("a", "1")
            and not manager.model_ready("zzz")
            and not manager.model_ready("a", "x")
        )
        assert sorted((v.name, v.version) for v in manager.loaded_versions()) == [
            ("a", 2),
            ("a", 3),
            ("b", 1),
        ]
        await manager.shutdown(1.0)

    run(scenario())
    assert sorted(probe.loads) == [("a", 2, ""), ("a", 3, ""), ("b", 1, "")]
    assert sorted(probe.unloads) == sorted(probe.loads)
    assert all(t != threading.main_thread().name for t in probe.load_threads)


def test_lookup_errors_use_tritons_words_and_kinds(repo: Path, make_manager: MakeManager) -> None:
    write_model(repo, "a", versions=(1,))
    write_model(repo, "broken", versions=(1,), config=config_text(fail_load="disk on fire"))

    async def scenario() -> None:
        manager = await _started(make_manager)
        with pytest.raises(ModelNotFound, match=r"^Request for unknown model: 'zzz' is not found$"):
            manager.acquire("zzz")
        with pytest.raises(ModelNotFound, match=r"^Request for unknown model: 'a' version 3 is not found$"):
            manager.acquire("a", "3")
        with pytest.raises(InvalidInput, match="'one'"):
            manager.acquire("a", "one")
        with pytest.raises(InvalidInput):
            manager.acquire("a", "-1")
        with pytest.raises(ModelNotReady, match="'broken' has no available versions") as e:
            manager.acquire("broken")
        assert e.value.kind is StatusKind.UNAVAILABLE
        with pytest.raises(
            ModelNotReady, match=r"version 1 is not at ready state.*UNAVAILABLE.*disk on fire"
        ):
            manager.acquire("broken", "1")
        with pytest.raises(ModelNotFound):
            manager.config("zzz")
        assert manager.config("a").name == "a"
        assert manager.config("a", "1").backend == "probe"
        await manager.shutdown(1.0)

    run(scenario())


def test_a_failing_or_misconfigured_model_does_not_affect_others(
    repo: Path, make_manager: MakeManager
) -> None:
    write_model(repo, "good")
    write_model(repo, "fails", config=config_text(fail_load="cannot load weights"))
    write_model(repo, "unknown_backend", config='backend: "nosuch"\n')
    write_model(repo, "bad_text", config="this is { not pbtxt\n")
    write_model(repo, "wrong_name", config='name: "other"\nbackend: "probe"\n')
    write_model(repo, "no_config", config="")
    write_model(repo, "no_versions", versions=())

    async def scenario() -> None:
        manager = await _started(make_manager)
        index = {e.name: e for e in manager.index()}
        assert index["good"] == IndexEntry("good", "1", "READY", "")
        assert index["fails"].state == "UNAVAILABLE" and "cannot load weights" in index["fails"].reason
        assert index["unknown_backend"].state == "UNAVAILABLE" and "nosuch" in index["unknown_backend"].reason
        assert "bad_text" in index["bad_text"].reason and index["bad_text"].version == ""
        assert "'other'" in index["wrong_name"].reason and "'wrong_name'" in index["wrong_name"].reason
        assert "backend" in index["no_config"].reason and "no config.pbtxt" in index["no_config"].reason
        assert "no version directory" in index["no_versions"].reason
        assert manager.model_ready("good")
        assert not manager.server_ready, "strict readiness: failed models make the server not ready"
        await manager.shutdown(1.0)

    run(scenario())


def test_non_strict_readiness_only_needs_the_server_started(repo: Path, make_manager: MakeManager) -> None:
    write_model(repo, "fails", config=config_text(fail_load="x"))

    async def scenario() -> None:
        manager = make_manager(strict_readiness=False)
        assert not manager.server_ready
        await manager.start()
        assert manager.server_ready
        await manager.shutdown(1.0)
        assert not manager.server_ready

    run(scenario())


def test_a_model_file_picks_the_backend_when_there_is_no_config(
    repo: Path, make_manager: MakeManager
) -> None:
    model = write_model(repo, "auto", config="")
    (model / "1" / "model.py").write_text("class TritonPythonModel: ...\n")

    async def scenario() -> None:
        manager = await _started(make_manager, extra_backends=("python",))
        assert manager.config("auto").backend == "python"
        assert manager.server_ready
        await manager.shutdown(1.0)

    run(scenario())


def test_duplicate_model_is_unavailable_with_a_reason(tmp_path: Path, make_manager: MakeManager) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_model(a, "dup")
    write_model(b, "dup")
    write_model(b, "solo")

    async def scenario() -> None:
        manager = await _started(make_manager, repositories=(a, b))
        [entry] = [e for e in manager.index() if e.name == "dup"]
        assert entry.state == "UNAVAILABLE" and "two or more repositories" in entry.reason
        assert manager.model_ready("solo")
        assert [e.name for e in manager.index(repository_name="a")] == ["dup"]
        assert [e.name for e in manager.index(repository_name=str(b))] == ["dup", "solo"]
        with pytest.raises(InvalidInput, match="'nope'"):
            manager.index(repository_name="nope")
        await manager.shutdown(1.0)

    run(scenario())


def test_explicit_mode_loads_only_startup_models_and_lists_the_rest(
    repo: Path, make_manager: MakeManager
) -> None:
    for name in ("a", "b", "c"):
        write_model(repo, name)

    async def scenario() -> None:
        manager = await _started(make_manager, mode="explicit", startup_models=("b",))
        assert manager.index() == [
            IndexEntry("a", "", "", ""),
            IndexEntry("b", "1", "READY", ""),
            IndexEntry("c", "", "", ""),
        ]
        assert manager.index(ready_only=True) == [IndexEntry("b", "1", "READY", "")]
        write_model(repo, "d")
        assert IndexEntry("d", "", "", "") in manager.index(), "index rescans for new model dirs"
        assert manager.server_ready
        await manager.shutdown(1.0)
        star = await _started(make_manager, mode="explicit", startup_models=("*",))
        assert [e.state for e in star.index()] == ["READY"] * 4
        await star.shutdown(1.0)

    run(scenario())


def test_startup_model_missing_from_the_repository_keeps_the_server_not_ready(
    repo: Path, make_manager: MakeManager
) -> None:
    write_model(repo, "a")

    async def scenario() -> None:
        manager = await _started(make_manager, mode="explicit", startup_models=("a", "typo"))
        assert manager.model_ready("a")
        [entry] = [e for e in manager.index() if e.name == "typo"]
        assert entry.state == "UNAVAILABLE" and "no model directory 'typo'" in entry.reason
        assert not manager.server_ready
        await manager.shutdown(1.0)

    run(scenario())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"repositories": ()}, "at least one"),
        ({"control_mode": ControlMode.POLL, "startup_models": ("a",)}, "explicit"),
        ({"control_mode": ControlMode.EXPLICIT, "startup_models": ("*", "a")}, r"'\*'"),
        ({"load_thread_count": 0}, "thread count"),
        ({"control_mode": ControlMode.POLL, "poll_interval_s": 0}, "poll interval"),
    ],
)
def test_bad_manager_config_is_refused(tmp_path: Path, kw: dict, match: str) -> None:
    config = ManagerConfig(**{"repositories": (tmp_path,), **kw})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=match):
        ModelManager(config)


def test_missing_repository_fails_start(tmp_path: Path, make_manager: MakeManager) -> None:
    manager = make_manager(repositories=(tmp_path / "nowhere",))
    with pytest.raises(ConfigError, match="nowhere"):
        run(manager.start())


def test_warmup_runs_before_the_version_is_ready(repo: Path, probe: Probe, make_manager: MakeManager) -> None:
    warm = (
        'model_warmup { name: "w" count: 2 '
        'inputs { key: "x" value: { data_type: TYPE_FP32 dims: 3 zero_data: true } } }'
    )
    write_model(repo, "warm", config=config_text(extra=warm))
    write_model(repo, "cold", config=config_text(fail_infer="1", extra=warm))

    async def scenario() -> None:
        manager = await _started(make_manager)
        assert manager.model_ready("warm")
        [cold] = [e for e in manager.index() if e.name == "cold"]
        assert cold.state == "UNAVAILABLE" and "warmup failed" in cold.reason
        with manager.acquire("warm") as handle:
            request = InferRequest("warm", "", "r1", {})
            responses = [r async for r in handle.backend.infer(request)]
            assert responses[0].final
        await manager.shutdown(1.0)

    run(scenario())
    assert probe.infer_calls[("warm", 1)] == 3
    assert ("cold", 1, "") in probe.unloads, "a backend that failed warmup is unloaded"

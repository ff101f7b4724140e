"""ServerConfig flags: Triton's names, defaults and value syntax; bad values name the flag and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import LogFormat, ServerConfig


def parse(*argv: str, env: dict[str, str] | None = None) -> ServerConfig:
    return ServerConfig.from_args(argv, env=env or {})


def test_defaults_match_triton() -> None:
    c = parse("--model-repository", "/models")
    assert c.model_repositories == (Path("/models"),)
    assert (c.model_control_mode, c.grpc_address, c.grpc_port, c.metrics_port) == (
        "none",
        "0.0.0.0",
        8001,
        8002,
    )
    assert c.strict_readiness and c.allow_metrics and c.log_info
    assert (c.exit_timeout_secs, c.model_load_thread_count, c.log_verbose) == (30.0, 4, 0)
    assert c.repository_poll_secs == 0.0  # forced to 0 outside poll mode, as Triton does
    assert parse("--model-repository", "/m", "--model-control-mode", "poll").repository_poll_secs == 15.0


def test_repeatable_flags_and_boolean_syntax() -> None:
    c = parse(
        "--model-repository", "/a", "--model-repository=/b",
        "--model-control-mode=explicit", "--load-model", "x", "--load-model=y",
        "--strict-readiness", "false", "--allow-metrics=0", "--log-info=off",
        "--trace-config", "mode=opentelemetry", "--trace-config=rate=1",
        "--log-format", "json", "--grpc-port", "0",
    )  # fmt: skip
    assert c.model_repositories == (Path("/a"), Path("/b"))
    assert c.load_models == ("x", "y")
    assert not c.strict_readiness and not c.allow_metrics and not c.log_info
    assert c.trace_config == ("mode=opentelemetry", "rate=1")
    assert c.log_format is LogFormat.JSON and c.grpc_port == 0


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--strict-readiness", "maybe"], ["--strict-readiness", "maybe"]),
        (["--grpc-port", "80a"], ["--grpc-port", "80a"]),
        (["--grpc-port", "70000"], ["--grpc-port", "70000"]),
        (["--model-control-mode", "sometimes"], ["--model-control-mode", "sometimes"]),
        (["--repository-poll-secs", "-1"], ["--repository-poll-secs", "-1"]),
        (["--model-load-thread-count", "0"], ["--model-load-thread-count", "0"]),
        (["--load-model", "m"], ["--load-model", "m", "explicit"]),
        (["--model-control-mode", "explicit", "--load-model", "*", "--load-model", "m"], ["*", "m"]),
        (["--metrics-config", "counter_latencies=maybe"], ["--metrics-config", "counter_latencies", "maybe"]),
        (["--metrics-config", "summary_latencies=true"], ["--metrics-config", "summary_latencies"]),
        (["--metrics-config", "gpu_metrics=true"], ["--metrics-config", "gpu_metrics"]),
        (["--metrics-config", "histogram_latencies"], ["--metrics-config", "histogram_latencies"]),
        (["--allow-cpu-metrics", "sometimes"], ["--allow-cpu-metrics", "sometimes"]),
        (["--log-file", "/nonexistent-hangar-dir/h.log"], ["--log-file", "/nonexistent-hangar-dir/h.log"]),
    ],
)
def test_bad_values_exit_2_naming_flag_and_value(
    argv: list[str], names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse("--model-repository", "/m", *argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    for name in names:
        assert name in err


def test_model_repository_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse("--grpc-port", "9000")
    assert info.value.code == 2
    assert "--model-repository" in capsys.readouterr().err


def test_environment_supplies_defaults_and_flags_win() -> None:
    env = {
        "HANGAR_MODEL_REPOSITORY": "/e1,/e2",
        "HANGAR_GRPC_PORT": "9100",
        "HANGAR_STRICT_READINESS": "false",
    }
    c = parse(env=env)
    assert c.model_repositories == (Path("/e1"), Path("/e2"))
    assert c.grpc_port == 9100 and not c.strict_readiness
    assert parse("--grpc-port", "9200", "--model-repository", "/f", env=env).model_repositories == (
        Path("/f"),
    )
    assert parse("--grpc-port", "9200", env=env).grpc_port == 9200


def test_bad_environment_value_names_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--model-repository", "/m", env={"HANGAR_GRPC_PORT": "lots"})
    err = capsys.readouterr().err
    assert "HANGAR_GRPC_PORT" in err and "lots" in err


def test_direct_construction_checks_cross_fields() -> None:
    with pytest.raises(ValueError, match="explicit"):
        ServerConfig(model_repositories=(Path("/m"),), load_models=("a",))
    with pytest.raises(ValueError, match="model-repository"):
        ServerConfig(model_repositories=())


def test_metrics_and_log_file_flags(tmp_path: Path) -> None:
    c = parse("--model-repository", "/m")
    assert (c.metrics_config, c.allow_cpu_metrics, c.log_file) == ((), True, "")
    log_file = tmp_path / "hangar.log"
    c = parse(
        "--model-repository", "/m", "--metrics-config", "counter_latencies=false",
        "--metrics-config=histogram_latencies=1", "--allow-cpu-metrics", "off", "--log-file", str(log_file),
    )  # fmt: skip
    assert c.metrics_config == ("counter_latencies=false", "histogram_latencies=1")
    assert not c.allow_cpu_metrics and c.log_file == str(log_file)
    env = {"HANGAR_METRICS_CONFIG": "histogram_latencies=false", "HANGAR_ALLOW_CPU_METRICS": "false",
           "HANGAR_LOG_FILE": str(log_file)}  # fmt: skip
    c = parse("--model-repository", "/m", env=env)
    assert (c.metrics_config, c.allow_cpu_metrics, c.log_file) == (
        ("histogram_latencies=false",), False, str(log_file),
    )  # fmt: skip
    assert not log_file.exists()  # checked, not created: the log handler opens it at startup


def test_log_file_that_is_a_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse("--model-repository", "/m", "--log-file", str(tmp_path))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--log-file" in err and str(tmp_path) in err and "directory" in err

"""The compose stack: files it mounts exist, and Hangar's flags there are ones Hangar accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from server.config import ServerConfig
from server.telemetry.trace_config import TraceConfig
from tests.deploy.catalogue import DEPLOY, ROOT

COMPOSE = DEPLOY / "compose"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def test_every_mounted_or_built_path_exists() -> None:
    services = _compose()["services"]
    assert set(services) == {"hangar", "tempo", "prometheus", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            host = volume.split(":", 1)[0]
            assert (COMPOSE / host).resolve().exists(), f"{name}: {host} does not exist"
        build = service.get("build")
        if build:
            context = (COMPOSE / build["context"]).resolve()
            assert context == ROOT
            assert (context / build["dockerfile"]).is_file()


def test_hangar_flags_parse_and_send_traces_to_tempos_otlp_receiver() -> None:
    hangar = _compose()["services"]["hangar"]
    config = ServerConfig.from_args(hangar["command"], env={})
    assert config.model_repositories == (Path("/models"),)
    assert config.metrics_port == 8002 and config.grpc_port == 8001
    tracing = TraceConfig.from_flags(config.trace_config, {})
    assert tracing.enabled and tracing.endpoint == "http://tempo:4318/v1/traces"
    tempo = yaml.safe_load((COMPOSE / "tempo" / "tempo.yaml").read_text())
    protocols = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols["http"]["endpoint"].endswith(":4318") and protocols["grpc"]["endpoint"].endswith(":4317")
    assert "8002:8002" in hangar["ports"] and "8001:8001" in hangar["ports"]


def test_stop_grace_outlasts_the_exit_timeout() -> None:
    hangar = _compose()["services"]["hangar"]
    config = ServerConfig.from_args(hangar["command"], env={})
    assert int(hangar["stop_grace_period"].rstrip("s")) > config.exit_timeout_secs

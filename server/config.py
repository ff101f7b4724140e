"""ServerConfig: the `hangar serve` flags (Triton's names, defaults and value syntax), env `HANGAR_*`."""

from __future__ import annotations

import argparse
import enum
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.errors import ConfigError
from server.telemetry.metrics_config import MetricsConfig

ENV_PREFIX = "HANGAR_"
_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no")


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class ServerConfig:
    """Everything `hangar serve` is configured with; from `ServerConfig.from_args` or built in tests."""

    model_repositories: tuple[Path, ...]
    """`--model-repository` (repeatable, required)."""
    model_control_mode: str = "none"
    """none | poll | explicit (PROTOCOL.md 3)."""
    repository_poll_secs: float = 15.0
    """Seconds between rescans in poll mode; forced to 0 in the other modes, as Triton does."""
    load_models: tuple[str, ...] = ()
    """`--load-model` names (explicit mode only); `("*",)` loads every model."""
    grpc_address: str = "0.0.0.0"
    grpc_port: int = 8001
    """0 picks a free port (the log line and `HangarServer.port` say which)."""
    reuse_grpc_port: bool = False
    allow_metrics: bool = True
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 8002
    metrics_config: tuple[str, ...] = ()
    """Raw `--metrics-config` items (`<key>=<value>`, checked when parsed); `MetricsConfig.with_settings`."""
    allow_cpu_metrics: bool = True
    trace_config: tuple[str, ...] = ()
    """Raw `--trace-config` values (`[<mode>,]<key>=<value>`); the telemetry layer parses them."""
    log_verbose: int = 0
    log_format: LogFormat = LogFormat.TEXT
    log_info: bool = True
    log_warning: bool = True
    log_error: bool = True
    log_file: str = ""
    """`--log-file`; empty logs to stderr."""
    strict_readiness: bool = True
    exit_timeout_secs: float = 30.0
    model_load_thread_count: int = 4
    event_loop: str = "auto"
    """auto | uvloop | asyncio: the event loop `hangar serve` runs on (auto: uvloop when installed)."""

    def __post_init__(self) -> None:
        _check_cross_fields(self)

    @classmethod
    def from_args(cls, argv: Sequence[str], env: Mapping[str, str] | None = None) -> ServerConfig:
        """Parse `serve` flags; bad values exit 2 through argparse with a message naming flag and value."""
        parser = argparse.ArgumentParser(prog="hangar serve")
        add_arguments(parser, os.environ if env is None else env)
        return from_namespace(parser, parser.parse_args(list(argv)))


def parse_bool(text: str) -> bool:
    """Triton's boolean flag values: true/false, 1/0, on/off, yes/no (any case)."""
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value: '{text}' (expected true or false)")


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer value: '{text}'") from None
        if value < low or (high is not None and value > high):
            span = f"between {low} and {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"value {value} out of range (must be {span})")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: '{text}'") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"value {text} out of range (must be >= 0)")
    return value


def _choice(*names: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in names:
            raise argparse.ArgumentTypeError(f"invalid choice: '{text}' (choose from {', '.join(names)})")
        return text.lower()

    return parse


def _metrics_setting(text: str) -> str:
    """One `--metrics-config` item, checked by the telemetry layer's own parser."""
    try:
        MetricsConfig().with_settings([text])
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--metrics-config").lstrip(": ")) from None
    return text.strip()


def _log_file(text: str) -> str:
    """Empty logs to stderr; otherwise a file whose directory exists (it is created or appended to)."""
    if not text:
        return ""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"'{text}' is a directory (expected a log file path)")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write '{text}': directory {path.parent} does not exist")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write '{text}': permission denied")
    return str(path)


_PORT = _bounded_int(0, 65535)
# (flag, type, default, repeatable, help); defaults and names follow tritonserver's.
_FLAGS: tuple[tuple[str, Callable[[str], Any], Any, bool, str], ...] = (
    ("--model-repository", Path, None, True, "model repository directory (repeatable, required)"),
    ("--model-control-mode", _choice("none", "poll", "explicit"), "none", False, "none | poll | explicit"),
    ("--repository-poll-secs", _non_negative_float, 15.0, False, "seconds between rescans in poll mode"),
    ("--load-model", str, None, True, "model to load at startup in explicit mode (repeatable; * = all)"),
    ("--grpc-address", str, "0.0.0.0", False, "gRPC listen address"),
    ("--grpc-port", _PORT, 8001, False, "gRPC port (0 picks a free one)"),
    ("--reuse-grpc-port", parse_bool, False, False, "set SO_REUSEPORT on the gRPC port"),
    ("--allow-metrics", parse_bool, True, False, "serve Prometheus metrics"),
    ("--metrics-address", str, "0.0.0.0", False, "metrics listen address"),
    ("--metrics-port", _PORT, 8002, False, "metrics port"),
    ("--metrics-config", _metrics_setting, None, True, "key=bool: counter_latencies, histogram_latencies"),
    ("--allow-cpu-metrics", parse_bool, True, False, "export CPU utilization and memory metrics"),
    ("--trace-config", str, None, True, "tracing setting [<mode>,]<key>=<value> (repeatable)"),
    ("--log-verbose", _bounded_int(0), 0, False, "verbose logging level (0 = off)"),
    ("--log-format", _choice("text", "json"), "text", False, "text | json"),
    ("--log-info", parse_bool, True, False, "log INFO messages"),
    ("--log-warning", parse_bool, True, False, "log WARNING messages"),
    ("--log-error", parse_bool, True, False, "log ERROR messages"),
    ("--log-file", _log_file, "", False, "write the log to this file instead of stderr"),
    ("--strict-readiness", parse_bool, True, False, "ready only when every model is ready"),
    ("--exit-timeout-secs", _non_negative_float, 30.0, False, "seconds to finish in-flight work on exit"),
    ("--model-load-thread-count", _bounded_int(1), 4, False, "threads that load models in parallel"),
    (
        "--event-loop",
        _choice("auto", "uvloop", "asyncio"),
        "auto",
        False,
        "auto | uvloop | asyncio (auto: uvloop when it is installed)",
    ),
)


def env_name(flag: str) -> str:
    """`--grpc-port` -> `HANGAR_GRPC_PORT`."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Adds the serve flags; `HANGAR_<FLAG>` in `env` supplies a default (repeatable ones split on ',')."""
    for flag, parse, default, repeatable, text in _FLAGS:
        raw = env.get(env_name(flag))
        value: Any = default
        if raw is not None:
            value = _env_default(parser, flag, parse, raw, repeatable)
        shown = (
            ""
            if default is None or default == ""
            else f"default {str(default).lower() if isinstance(default, bool) else default}; "
        )
        kwargs: dict[str, Any] = {
            "type": parse, "metavar": _metavar(parse), "help": f"{text} ({shown}env {env_name(flag)})",
        }  # fmt: skip
        if repeatable:
            parser.add_argument(flag, action="append", default=None, **kwargs)
            parser.set_defaults(**{_dest(flag) + "_env": value})
        else:
            parser.add_argument(flag, default=value, **kwargs)


def _metavar(parse: Callable[[str], Any]) -> str:
    if parse is parse_bool:
        return "BOOL"
    if parse is Path:
        return "PATH"
    names = {"_non_negative_float": "SECONDS", "_log_file": "PATH", "_metrics_setting": "KEY=VALUE"}
    return names.get(getattr(parse, "__name__", ""), "VALUE")


def _env_default(
    parser: argparse.ArgumentParser, flag: str, parse: Callable[[str], Any], raw: str, repeatable: bool
) -> Any:
    try:
        if repeatable:
            return [parse(part) for part in raw.split(",") if part]
        return parse(raw)
    except argparse.ArgumentTypeError as e:
        parser.error(f"environment {env_name(flag)} (for {flag}): {e}")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def from_namespace(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> ServerConfig:
    """The ServerConfig for parsed flags; cross-flag errors exit 2 through `parser.error`."""

    def repeated(flag: str) -> tuple[Any, ...]:
        given = getattr(ns, _dest(flag))
        return tuple(given if given is not None else getattr(ns, _dest(flag) + "_env", None) or ())

    try:
        return ServerConfig(
            model_repositories=repeated("--model-repository"),
            model_control_mode=ns.model_control_mode,
            repository_poll_secs=ns.repository_poll_secs,
            load_models=repeated("--load-model"),
            grpc_address=ns.grpc_address,
            grpc_port=ns.grpc_port,
            reuse_grpc_port=ns.reuse_grpc_port,
            allow_metrics=ns.allow_metrics,
            metrics_address=ns.metrics_address,
            metrics_port=ns.metrics_port,
            metrics_config=repeated("--metrics-config"),
            allow_cpu_metrics=ns.allow_cpu_metrics,
            trace_config=repeated("--trace-config"),
            log_verbose=ns.log_verbose,
            log_format=LogFormat(ns.log_format),
            log_info=ns.log_info,
            log_warning=ns.log_warning,
            log_error=ns.log_error,
            log_file=ns.log_file,
            strict_readiness=ns.strict_readiness,
            exit_timeout_secs=ns.exit_timeout_secs,
            model_load_thread_count=ns.model_load_thread_count,
            event_loop=ns.event_loop,
        )
    except ValueError as e:
        parser.error(str(e))


def _check_cross_fields(c: ServerConfig) -> None:
    if not c.model_repositories:
        raise ValueError("--model-repository is required (at least one model repository directory)")
    if c.event_loop not in ("auto", "uvloop", "asyncio"):
        raise ValueError(
            f"--event-loop: invalid choice: '{c.event_loop}' (choose from auto, uvloop, asyncio)"
        )
    if c.model_control_mode not in ("none", "poll", "explicit"):
        raise ValueError(f"--model-control-mode: invalid choice: '{c.model_control_mode}'")
    if c.load_models and c.model_control_mode != "explicit":
        raise ValueError(
            f"--load-model {', '.join(c.load_models)} needs --model-control-mode=explicit "
            f"(the mode is '{c.model_control_mode}')"
        )
    if "*" in c.load_models and len(c.load_models) > 1:
        raise ValueError(
            f"--load-model=* must be the only --load-model (also given: "
            f"{', '.join(m for m in c.load_models if m != '*')})"
        )
    if any(not m for m in c.load_models):
        raise ValueError("--load-model: invalid value: '' (expected a model name)")
    if c.model_control_mode != "poll":
        # Triton forces the interval to 0 outside poll mode rather than refusing it.
        object.__setattr__(c, "repository_poll_secs", 0.0)
    if c.model_control_mode == "poll" and c.repository_poll_secs <= 0:
        raise ValueError(f"--repository-poll-secs: value {c.repository_poll_secs} must be > 0 in poll mode")

"""Structured logs: layouts, request/trace ids, level switches, and the LogSettings RPC state."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from server.errors import InvalidInput
from server.telemetry.logging import LogConfig, LogFormat, LogSettings, _ContextFilter, request_context


@pytest.fixture
def logs() -> Iterator[tuple[LogSettings, io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    logger = logging.getLogger("test_telemetry_logging")
    logger.propagate = False
    settings = LogSettings(LogConfig(format=LogFormat.JSON), logger=logger, stream=stream)
    yield settings, stream, logger
    settings.close()


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_request_and_trace_ids(
    logs: tuple[LogSettings, io.StringIO, logging.Logger],
) -> None:
    _, stream, logger = logs
    with request_context("req-7", "ab" * 16):
        logger.info("serving %s", "m")
    logger.warning("after")
    first, second = (json.loads(line) for line in _lines(stream))
    assert first["message"] == "serving m" and first["level"] == "INFO"
    assert first["request_id"] == "req-7" and first["trace_id"] == "ab" * 16
    assert first["time"].endswith("Z") and first["logger"] == "test_telemetry_logging"
    assert "request_id" not in second


def test_exceptions_are_included(logs: tuple[LogSettings, io.StringIO, logging.Logger]) -> None:
    _, stream, logger = logs
    try:
        raise ValueError("bad tensor")
    except ValueError:
        logger.exception("failed")
    record = json.loads(_lines(stream)[0])
    assert "ValueError: bad tensor" in record["exception"]


def test_triton_text_layouts(logs: tuple[LogSettings, io.StringIO, logging.Logger]) -> None:
    settings, stream, logger = logs
    settings.update({"log_format": "default"})
    with request_context("r1"):
        logger.error("boom")
    settings.update({"log_format": "ISO8601"})
    logger.info("iso")
    default, iso = _lines(stream)
    assert default.startswith("E") and default.endswith("test_telemetry_logging] boom [request_id=r1]")
    assert iso[:4].isdigit() and "Z I " in iso and iso.endswith("] iso")


def test_level_switches_and_verbose_levels(logs: tuple[LogSettings, io.StringIO, logging.Logger]) -> None:
    settings, stream, logger = logs
    logger.debug("hidden at verbose 0")
    settings.update({"log_info": False})
    logger.info("hidden: info off")
    logger.warning("shown")
    settings.update({"log_verbose_level": 2, "log_info": True})
    logger.debug("shown at verbose 2")
    assert [json.loads(line)["message"] for line in _lines(stream)] == ["shown", "shown at verbose 2"]


def test_verbose_one_is_hangars_own_debug_only() -> None:
    def shown(verbose: int, logger_name: str) -> bool:
        gate = _ContextFilter(LogConfig(verbose=verbose))
        return gate.filter(logging.LogRecord(logger_name, logging.DEBUG, __file__, 1, "m", None, None))

    assert shown(1, "server.engine.loop") and shown(1, "hangar")
    assert not shown(1, "grpc._cython") and not shown(1, "hangarish")
    assert shown(2, "grpc._cython")
    assert not shown(0, "server.engine.loop")


def test_rpc_view_update_reset_and_errors(logs: tuple[LogSettings, io.StringIO, logging.Logger]) -> None:
    settings, _, _ = logs
    assert settings.get() == {"log_file": "", "log_info": True, "log_warning": True, "log_error": True,
                              "log_verbose_level": 0, "log_format": "json"}  # fmt: skip
    assert settings.update({"log_verbose_level": 3})["log_verbose_level"] == 3
    assert settings.update({"log_verbose_level": None})["log_verbose_level"] == 0
    for changes, words in (({"log_colour": True}, "log_colour"), ({"log_info": 1}, "log_info"),
                           ({"log_verbose_level": -1}, "-1"), ({"log_format": "xml"}, "xml"),
                           ({"log_file": "/nonexistent-dir/x.log"}, "/nonexistent-dir/x.log")):  # fmt: skip
        with pytest.raises(InvalidInput, match=words):
            settings.update(changes)
    assert settings.get()["log_format"] == "json"


def test_log_file_switch(tmp_path, logs: tuple[LogSettings, io.StringIO, logging.Logger]) -> None:  # type: ignore[no-untyped-def]
    settings, stream, logger = logs
    path = tmp_path / "hangar.log"
    settings.update({"log_file": str(path)})
    logger.info("to file")
    settings.update({"log_file": ""})
    logger.info("to stream")
    assert json.loads(path.read_text())["message"] == "to file"
    assert [json.loads(line)["message"] for line in _lines(stream)] == ["to stream"]


def test_installed_finds_the_owner() -> None:
    logger = logging.getLogger("test_installed")
    logger.propagate = False
    assert LogSettings.installed(logger) is None
    settings = LogSettings(LogConfig(), logger=logger, stream=io.StringIO())
    try:
        assert LogSettings.installed(logger) is settings
    finally:
        settings.close()
    assert LogSettings.installed(logger) is None

"""Structured logs (Triton's text layouts or JSON) with request and trace ids; the LogSettings RPC state."""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import enum
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO

from server.errors import InvalidInput

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("hangar_request_id", default="")
_TRACE_ID: contextvars.ContextVar[str] = contextvars.ContextVar("hangar_trace_id", default="")
_OWN_LOGGERS = ("server", "builders", "hangar", "__main__")


class LogFormat(enum.Enum):
    DEFAULT = "default"
    """Triton's glog-like `I0515 12:34:56.789012 <pid> <logger>] message`."""
    ISO8601 = "ISO8601"
    JSON = "json"
    """One JSON object per line (Hangar's addition)."""


@dataclass(frozen=True)
class LogConfig:
    """Triton's --log-* flags; the LogSettings RPC reads and changes the same fields at run time."""

    verbose: int = 0
    """--log-verbose: 0 none; 1 Hangar's debug logs; 2 and up, debug logs of every library too."""
    info: bool = True
    warning: bool = True
    error: bool = True
    format: LogFormat = LogFormat.DEFAULT
    file: str = ""
    """--log-file; empty logs to stderr."""


@contextlib.contextmanager
def request_context(request_id: str, trace_id: str = "") -> Iterator[None]:
    """Tag every log record emitted inside (this task, this thread) with the request and trace ids."""
    rid, tid = _REQUEST_ID.set(request_id), _TRACE_ID.set(trace_id)
    try:
        yield
    finally:
        _TRACE_ID.reset(tid)
        _REQUEST_ID.reset(rid)


class _ContextFilter(logging.Filter):
    """Adds request_id/trace_id and drops records whose level the settings turned off."""

    def __init__(self, config: LogConfig) -> None:
        super().__init__()
        self.config = config

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _REQUEST_ID.get()
        record.trace_id = _TRACE_ID.get()
        c = self.config
        if record.levelno >= logging.ERROR:
            return c.error
        if record.levelno >= logging.WARNING:
            return c.warning
        if record.levelno >= logging.INFO:
            return c.info
        return c.verbose >= 2 or (c.verbose >= 1 and _is_own(record.name))


def _is_own(name: str) -> bool:
    return any(name == own or name.startswith(own + ".") for own in _OWN_LOGGERS)


class _Formatter(logging.Formatter):
    def __init__(self, fmt: LogFormat) -> None:
        super().__init__()
        self.layout = fmt

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        ts = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
        rid, tid = getattr(record, "request_id", ""), getattr(record, "trace_id", "")
        if self.layout is LogFormat.JSON:
            doc: dict[str, Any] = {
                "time": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "level": record.levelname, "logger": record.name, "message": message, "pid": record.process,
            }  # fmt: skip
            if rid:
                doc["request_id"] = rid
            if tid:
                doc["trace_id"] = tid
            if record.exc_text:
                doc["exception"] = record.exc_text
            return json.dumps(doc, ensure_ascii=False)
        head = (
            f"{ts:%Y-%m-%dT%H:%M:%SZ} {record.levelname[0]} {record.process} {record.name}]"
            if self.layout is LogFormat.ISO8601
            else f"{record.levelname[0]}{ts:%m%d %H:%M:%S.%f} {record.process} {record.name}]"
        )
        tags = "".join(f" {k}={v}" for k, v in (("request_id", rid), ("trace_id", tid)) if v)
        text = f"{head} {message}" + (f" [{tags.strip()}]" if tags else "")
        return f"{text}\n{record.exc_text}" if record.exc_text else text


_RPC_KEYS = {
    "log_file": "file", "log_info": "info", "log_warning": "warning", "log_error": "error",
    "log_verbose_level": "verbose", "log_format": "format",
}  # fmt: skip


class LogSettings:
    """Owns Hangar's log handler on `logger` (the root logger by default); backs the LogSettings RPC."""

    def __init__(self, config: LogConfig, logger: logging.Logger | None = None, stream: TextIO | None = None):
        self._logger = logger or logging.getLogger()
        self._stream = stream
        self._lock = threading.Lock()
        self._filter = _ContextFilter(config)
        self._handler: logging.Handler | None = None
        self._level_before = self._logger.level
        self._startup = config
        self.config = config
        self._install(config)

    @classmethod
    def installed(cls, logger: logging.Logger | None = None) -> LogSettings | None:
        """The LogSettings whose handler sits on `logger` (the root logger by default), if any."""
        for handler in (logger or logging.getLogger()).handlers:
            owner = getattr(handler, "hangar_log_settings", None)
            if isinstance(owner, LogSettings):
                return owner
        return None

    def get(self) -> dict[str, bool | int | str]:
        """The settings as the LogSettings RPC reports them."""
        c = self.config
        return {"log_file": c.file, "log_info": c.info, "log_warning": c.warning, "log_error": c.error,
                "log_verbose_level": c.verbose, "log_format": c.format.value}  # fmt: skip

    def update(self, changes: Mapping[str, bool | int | str | None]) -> dict[str, bool | int | str]:
        """Apply a LogSettings request (all or nothing); a None value resets that key to its startup value.

        Raises:
            InvalidInput: an unknown key, a value of the wrong type, or a log file that cannot be opened.
        """
        config = self.config
        for key, value in changes.items():
            config = _changed(config, key, self._startup_value(key) if value is None else value)
        with self._lock:
            self._install(config)
        return self.get()

    def reconfigure(self, config: LogConfig) -> None:
        """Replace every setting, and make them the ones a reset returns to (a new server start)."""
        with self._lock:
            self._install(config)
            self._startup = config

    def _startup_value(self, key: str) -> bool | int | str:
        if key not in _RPC_KEYS:
            raise InvalidInput(f"unknown log setting '{key}' (known: {', '.join(_RPC_KEYS)})")
        value = getattr(self._startup, _RPC_KEYS[key])
        return value.value if isinstance(value, LogFormat) else value

    def close(self) -> None:
        """Take the handler off and give the logger back its level."""
        with self._lock:
            if self._handler is not None:
                self._logger.removeHandler(self._handler)
                self._handler.close()
                self._handler = None
                self._logger.setLevel(self._level_before)

    def _install(self, config: LogConfig) -> None:
        handler: logging.Handler
        try:
            if config.file:
                handler = logging.FileHandler(config.file)
            else:
                handler = logging.StreamHandler(self._stream) if self._stream else _StderrHandler()
        except OSError as e:
            raise InvalidInput(f"cannot open log file '{config.file}': {e.strerror}") from None
        handler.setFormatter(_Formatter(config.format))
        self._filter.config = config
        handler.addFilter(self._filter)
        setattr(handler, "hangar_log_settings", self)  # noqa: B010 - found again by installed()
        if self._handler is not None:
            self._logger.removeHandler(self._handler)
            self._handler.close()
        self._handler = handler
        self._logger.addHandler(handler)
        self._logger.setLevel(logging.DEBUG if config.verbose > 0 else logging.INFO)
        self.config = config


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners swap it), like logging.lastResort."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _changed(config: LogConfig, key: str, value: bool | int | str) -> LogConfig:
    attr = _RPC_KEYS.get(key)
    if attr is None:
        raise InvalidInput(f"unknown log setting '{key}' (known: {', '.join(_RPC_KEYS)})")
    if attr == "format":
        try:
            return replace(config, format=LogFormat(value))
        except ValueError:
            names = ", ".join(f.value for f in LogFormat)
            raise InvalidInput(f"log_format must be one of {names}, got {value!r}") from None
    if attr == "verbose":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"log_verbose_level must be a non-negative integer, got {value!r}")
        return replace(config, verbose=value)
    if attr == "file":
        if not isinstance(value, str):
            raise InvalidInput(f"log_file must be a string, got {value!r}")
        return replace(config, file=os.path.expanduser(value))
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be a bool, got {value!r}")
    if attr == "info":
        return replace(config, info=value)
    if attr == "warning":
        return replace(config, warning=value)
    return replace(config, error=value)

"""Domain errors with a status kind; the transport maps each kind to a gRPC code (no grpc import here)."""

from __future__ import annotations

import enum


class StatusKind(enum.Enum):
    """Triton's error kinds (PROTOCOL.md 1.8); the app maps them onto gRPC status codes."""

    UNKNOWN = "UNKNOWN"
    INTERNAL = "INTERNAL"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ARG = "INVALID_ARG"
    UNAVAILABLE = "UNAVAILABLE"
    UNSUPPORTED = "UNSUPPORTED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CANCELLED = "CANCELLED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"


class HangarError(Exception):
    """Base of every error that reaches a client; `kind` picks the status code."""

    kind: StatusKind = StatusKind.INTERNAL

    def __init__(self, message: str, kind: StatusKind | None = None) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return self.message


class InvalidInput(HangarError):
    """The request (or a flag, or a parameter) is malformed; names the offending value."""

    kind = StatusKind.INVALID_ARG


class ModelNotFound(HangarError):
    """No such model, or no such version of it."""

    kind = StatusKind.NOT_FOUND


class ModelNotReady(HangarError):
    """The model exists but cannot serve now (loading, unloading, failed, duplicate)."""

    kind = StatusKind.UNAVAILABLE


class Unsupported(HangarError):
    """A feature Hangar (or this model) does not implement."""

    kind = StatusKind.UNSUPPORTED


class Unavailable(HangarError):
    """A transient refusal: queue full, server shutting down, control mode forbids it."""

    kind = StatusKind.UNAVAILABLE


class ResourceExhausted(HangarError):
    """The request can never fit (e.g. a prompt larger than the whole KV pool)."""

    kind = StatusKind.RESOURCE_EXHAUSTED


class Cancelled(HangarError):
    """The client cancelled the request."""

    kind = StatusKind.CANCELLED


class ConfigError(HangarError):
    """A config.pbtxt, a load override or a backend parameter is invalid."""

    kind = StatusKind.INVALID_ARG


class LoadError(HangarError):
    """A model version failed to load; the reason shows in RepositoryIndex."""

    kind = StatusKind.INTERNAL


class BackendError(HangarError):
    """The model itself failed while executing a request."""

    kind = StatusKind.INTERNAL

"""Telemetry: Prometheus metrics, OpenTelemetry traces and structured logs, fed by plain stats objects."""

from __future__ import annotations

from typing import Any

_SERVICE = ("TelemetryService", "configure_logging", "create_telemetry")


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m server.telemetry.catalog` and light imports skip OpenTelemetry's import cost.
    if name in _SERVICE:
        from server.telemetry import service

        return getattr(service, name)
    raise AttributeError(f"module 'server.telemetry' has no attribute '{name}'")


__all__ = list(_SERVICE)

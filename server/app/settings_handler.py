"""TraceSetting / LogSettings (served by the telemetry layer) and the shared-memory RPCs Hangar refuses."""

from __future__ import annotations

from server.app.telemetry_port import SettingsService, SettingValue
from server.errors import BackendError, Unsupported
from server.protocol.gen import grpc_service_pb2 as pb


class SettingsHandler:
    def __init__(self, settings: SettingsService | None) -> None:
        self._settings = settings

    def trace_setting(self, request: pb.TraceSettingRequest) -> pb.TraceSettingResponse:
        service = self._service("TraceSetting", "trace")
        # An empty value list clears the setting back to its default.
        updates = {key: (list(v.value) or None) for key, v in request.settings.items()}
        current = service.trace_settings(request.model_name, updates)
        return pb.TraceSettingResponse(
            settings={k: pb.TraceSettingResponse.SettingValue(value=v) for k, v in current.items()}
        )

    def log_settings(self, request: pb.LogSettingsRequest) -> pb.LogSettingsResponse:
        service = self._service("LogSettings", "log")
        updates: dict[str, SettingValue | None] = {}
        for key, v in request.settings.items():
            kind = v.WhichOneof("parameter_choice")
            updates[key] = getattr(v, kind) if kind is not None else None
        current = service.log_settings(updates)
        return pb.LogSettingsResponse(settings={k: _log_value(k, v) for k, v in current.items()})

    def _service(self, rpc: str, what: str) -> SettingsService:
        if self._settings is None:
            raise Unsupported(
                f"{rpc} is not available: {what} settings need the telemetry layer, which is not enabled"
            )
        return self._settings


def _log_value(key: str, value: SettingValue) -> pb.LogSettingsResponse.SettingValue:
    if isinstance(value, bool):
        return pb.LogSettingsResponse.SettingValue(bool_param=value)
    if isinstance(value, int):
        return pb.LogSettingsResponse.SettingValue(uint32_param=value)
    if isinstance(value, str):
        return pb.LogSettingsResponse.SettingValue(string_param=value)
    raise BackendError(f"log setting '{key}' has unsupported type {type(value).__name__}")


class SharedMemoryHandler:
    """Hangar takes tensors in the request only; clients' "unregister all" housekeeping still succeeds."""

    def status(self, kind: str, name: str) -> None:
        if name:
            raise Unsupported(_refusal(kind, f"no status for region '{name}'"))

    def register(self, kind: str, name: str) -> None:
        raise Unsupported(_refusal(kind, f"cannot register region '{name}'"))

    def unregister(self, kind: str, name: str) -> None:
        if name:
            raise Unsupported(_refusal(kind, f"cannot unregister region '{name}'"))


def _refusal(kind: str, what: str) -> str:
    return (
        f"{kind} shared memory is not supported by this server: {what}; "
        "send tensor data in the request (raw_input_contents) instead"
    )

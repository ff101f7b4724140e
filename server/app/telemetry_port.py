"""What the app asks of the telemetry layer: structural protocols, so server/telemetry never imports app."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from server.types import InferRequest

if TYPE_CHECKING:
    import grpc

    from server.repository.manager import ModelManager

SettingValue = bool | int | str


class RequestObserver(Protocol):
    """Told once per finished request; builds spans after the fact from `request.times` (no hot-path work).

    `request.trace_context` carries the client's `traceparent`/`tracestate`; `times.first_response_ns` is
    the first response (first token), `times.received_ns` the receipt and the last response is "now".
    """

    def request_finished(
        self, request: InferRequest, model_version: int, responses: int, error: BaseException | None
    ) -> None: ...

    def wants_trace_context(self) -> bool:
        """Whether `request_finished` would read `request.trace_context` now (asked once per request:
        reading the call's metadata costs microseconds, wasted while nothing is traced or logged)."""
        ...


class SettingsService(Protocol):
    """The TraceSetting and LogSettings RPCs in domain types (no protobuf crosses this seam).

    Both apply `updates` (None value = reset that key to its default) and return every current setting.
    Raise `server.errors.InvalidInput` naming the key or value for a bad setting.
    """

    def trace_settings(
        self, model_name: str, updates: Mapping[str, Sequence[str] | None]
    ) -> dict[str, list[str]]: ...

    def log_settings(self, updates: Mapping[str, SettingValue | None]) -> dict[str, SettingValue]: ...


class Telemetry(Protocol):
    """The optional collaborator `HangarServer` is given; `None` means no metrics, traces or settings."""

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        """gRPC server interceptors; any interceptor costs every call (about a third of unary throughput
        in bench/grpc_overhead.py), so return none unless needed: trace headers already reach the
        observer through `request.trace_context`."""
        ...

    @property
    def observer(self) -> RequestObserver | None:
        """Per-request hook; None keeps the hot path free of telemetry calls."""
        ...

    @property
    def settings(self) -> SettingsService | None:
        """Serves TraceSetting/LogSettings; None answers them UNIMPLEMENTED."""
        ...

    async def start(self, manager: ModelManager) -> None:
        """Called once the manager has started (models loaded): start exporters, the metrics endpoint."""
        ...

    async def stop(self) -> None:
        """Called last on shutdown, after the models are unloaded; flush exporters."""
        ...

"""GRPCInferenceService: one line per RPC, delegating to the handler that owns it.

Handlers raise domain errors (`server.errors`); `status_boundary` turns them into gRPC statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from server.app.error_boundary import status_boundary
from server.app.infer_handler import InferHandler
from server.app.metadata_handler import MetadataHandler
from server.app.repository_handler import RepositoryHandler
from server.app.server_state import ServerState
from server.app.settings_handler import SettingsHandler, SharedMemoryHandler
from server.app.statistics_handler import StatisticsHandler
from server.app.stream_handler import StreamHandler
from server.app.telemetry_port import RequestObserver, SettingsService
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.gen import grpc_service_pb2_grpc as service_grpc

Context: TypeAlias = grpc.aio.ServicerContext
SYSTEM, CUDA = "system", "CUDA"


class InferenceServicer(service_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        state: ServerState,
        observer: RequestObserver | None = None,
        settings: SettingsService | None = None,
    ) -> None:
        manager = state.manager
        self._metadata = MetadataHandler(state)
        self._infer = InferHandler(manager, observer)
        self._stream = StreamHandler(manager, observer)
        self._repository = RepositoryHandler(manager)
        self._statistics = StatisticsHandler(manager)
        self._settings = SettingsHandler(settings)
        self._shm = SharedMemoryHandler()

    def begin_drain(self) -> None:
        """Shutdown has begun: open streams stop taking requests and close once theirs are answered."""
        self._stream.begin_drain()

    # -- health and metadata --
    @status_boundary
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return self._metadata.server_live()

    @status_boundary
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return self._metadata.server_ready()

    @status_boundary
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        return self._metadata.model_ready(request)

    @status_boundary
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return self._metadata.server_metadata()

    @status_boundary
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        return self._metadata.model_metadata(request)

    @status_boundary
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context) -> pb.ModelConfigResponse:
        return self._metadata.model_config(request)

    # -- inference --
    @status_boundary
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> bytes:  # type: ignore[override]
        """Answers the serialized response: registered without a serializer (server.app.registration)."""
        return await self._infer.model_infer(request, context)

    @status_boundary
    async def ModelStreamInfer(  # type: ignore[override]
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> None:
        await self._stream.model_stream_infer(request_iterator, context)

    @status_boundary
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        return self._statistics.statistics(request)

    # -- repository --
    @status_boundary
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        return self._repository.index(request)

    @status_boundary
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        return await self._repository.load(request)

    @status_boundary
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        return await self._repository.unload(request)

    # -- shared memory (refused, except "unregister all") --
    @status_boundary
    async def SystemSharedMemoryStatus(
        self, request: pb.SystemSharedMemoryStatusRequest, context: Context
    ) -> pb.SystemSharedMemoryStatusResponse:
        self._shm.status(SYSTEM, request.name)
        return pb.SystemSharedMemoryStatusResponse()

    @status_boundary
    async def SystemSharedMemoryRegister(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: Context
    ) -> pb.SystemSharedMemoryRegisterResponse:
        self._shm.register(SYSTEM, request.name)
        return pb.SystemSharedMemoryRegisterResponse()

    @status_boundary
    async def SystemSharedMemoryUnregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: Context
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        self._shm.unregister(SYSTEM, request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    @status_boundary
    async def CudaSharedMemoryStatus(
        self, request: pb.CudaSharedMemoryStatusRequest, context: Context
    ) -> pb.CudaSharedMemoryStatusResponse:
        self._shm.status(CUDA, request.name)
        return pb.CudaSharedMemoryStatusResponse()

    @status_boundary
    async def CudaSharedMemoryRegister(
        self, request: pb.CudaSharedMemoryRegisterRequest, context: Context
    ) -> pb.CudaSharedMemoryRegisterResponse:
        self._shm.register(CUDA, request.name)
        return pb.CudaSharedMemoryRegisterResponse()

    @status_boundary
    async def CudaSharedMemoryUnregister(
        self, request: pb.CudaSharedMemoryUnregisterRequest, context: Context
    ) -> pb.CudaSharedMemoryUnregisterResponse:
        self._shm.unregister(CUDA, request.name)
        return pb.CudaSharedMemoryUnregisterResponse()

    # -- trace and log settings (the telemetry layer's) --
    @status_boundary
    async def TraceSetting(
        self, request: pb.TraceSettingRequest, context: Context
    ) -> pb.TraceSettingResponse:
        return self._settings.trace_setting(request)

    @status_boundary
    async def LogSettings(self, request: pb.LogSettingsRequest, context: Context) -> pb.LogSettingsResponse:
        return self._settings.log_settings(request)

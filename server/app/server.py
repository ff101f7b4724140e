"""HangarServer: the grpc.aio server around the servicers, with a graceful, bounded stop."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from grpc_reflection.v1alpha import reflection

from server.app.health import HealthServicer
from server.app.registration import add_inference_service
from server.app.server_state import ServerState
from server.app.servicer import InferenceServicer
from server.app.telemetry_port import Telemetry
from server.config import ServerConfig
from server.protocol.gen import POOL, grpc_service_pb2, health_pb2, health_pb2_grpc
from server.repository.manager import ModelManager

log = logging.getLogger("hangar")
MAX_MESSAGE_BYTES = 2**31 - 1
"""Triton's INT32_MAX send/receive limits; grpcio's 4 MiB default would refuse large tensors."""
UNLOAD_FLOOR_S = 1.0
"""Unloads get at least this long at shutdown, even when draining used the whole exit timeout."""


def listen_address(host: str, port: int) -> str:
    """`host:port`, bracketing a bare IPv6 host."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class HangarServer:
    """Owns the manager's lifetime and the gRPC server; `start()` then `stop()`, each once."""

    def __init__(
        self, config: ServerConfig, manager: ModelManager, telemetry: Telemetry | None = None
    ) -> None:
        self.config = config
        self.manager = manager
        self.telemetry = telemetry
        self.state = ServerState(manager)
        self._grpc: grpc.aio.Server | None = None
        self._servicer: InferenceServicer | None = None
        self._manager_started = False
        self._telemetry_started = False
        self._stopped = False
        self._clean = True  # False once an unload was abandoned at the exit timeout
        self.port = 0
        """The bound gRPC port once started (useful with `grpc_port=0`)."""

    @property
    def unloads_finished(self) -> bool:
        """False once a shutdown left a model unload running past the exit timeout."""
        return self._clean

    @property
    def address(self) -> str:
        return listen_address(self.config.grpc_address, self.port)

    async def start(self) -> None:
        """Load the startup models, then listen. Raises (after cleaning up) if the port cannot be bound."""
        t0 = time.monotonic()
        # Set before awaiting: a signal or failure during startup loads must still unload what loaded.
        self._manager_started = True
        try:
            await self.manager.start()
            if self.telemetry is not None:
                await self.telemetry.start(self.manager)
                self._telemetry_started = True
            self._grpc = self._build_grpc()
            target = listen_address(self.config.grpc_address, self.config.grpc_port)
            try:
                self.port = self._grpc.add_insecure_port(target)
            except RuntimeError as e:
                raise OSError(f"cannot listen on {target} (--grpc-address/--grpc-port): {e}") from e
            await self._grpc.start()
        except BaseException:
            await self._release(timeout_s=max(UNLOAD_FLOOR_S, self.config.exit_timeout_secs))
            raise
        ready = [f"{v.name}:{v.version}" for v in self.manager.loaded_versions()]
        log.info("models ready: %s", ", ".join(sorted(ready)) or "(none)")
        log.info(
            "Started GRPCInferenceService at %s (control mode %s, %.1fs to start)",
            self.address,
            self.config.model_control_mode,
            time.monotonic() - t0,
        )

    def _build_grpc(self) -> grpc.aio.Server:
        # No interceptors of our own (see error_boundary): only telemetry's, when it asks for any.
        interceptors = list(self.telemetry.interceptors()) if self.telemetry is not None else []
        server = grpc.aio.server(
            interceptors=interceptors or None,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", int(self.config.reuse_grpc_port)),
            ],
        )
        settings = self.telemetry.settings if self.telemetry is not None else None
        observer = self.telemetry.observer if self.telemetry is not None else None
        self._servicer = InferenceServicer(self.state, observer=observer, settings=settings)
        add_inference_service(self._servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(self.state), server)
        names = (
            grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server, pool=POOL)
        return server

    async def stop(self) -> bool:
        """Refuse new RPCs, let in-flight requests (open streams' too) finish, cancel what is left, unload
        the models and stop telemetry, all within --exit-timeout-secs (unloads get at least
        UNLOAD_FLOOR_S). True when every model unloaded in time; the rest is logged and left running.
        Idempotent."""
        if self._stopped:
            return self._clean
        self._stopped = True
        self.state.shutting_down = True
        deadline = time.monotonic() + self.config.exit_timeout_secs
        if self._grpc is not None:
            log.info(
                "stopping: refusing new RPCs, waiting up to %.0fs for in-flight requests",
                self.config.exit_timeout_secs,
            )
            if self._servicer is not None:
                self._servicer.begin_drain()
            await self._grpc.stop(grace=self.config.exit_timeout_secs)
        await self._release(timeout_s=max(UNLOAD_FLOOR_S, deadline - time.monotonic()))
        return self._clean

    async def abort(self, timeout_s: float) -> None:
        """A forced exit: cancel every RPC still in flight now (their clients get UNAVAILABLE), waiting at
        most `timeout_s` for that; models are not unloaded."""
        self.state.shutting_down = True
        if self._grpc is None:
            return
        if self._servicer is not None:
            self._servicer.begin_drain()
        stopping = asyncio.ensure_future(self._grpc.stop(grace=None))
        done, _ = await asyncio.wait({stopping}, timeout=timeout_s)
        if not done:
            log.warning("RPC handlers still running %.0fs after cancelling them; exiting anyway", timeout_s)

    async def _release(self, timeout_s: float) -> None:
        if self._manager_started:
            self._manager_started = False
            log.info("unloading models")
            shutdown = asyncio.ensure_future(self.manager.shutdown(timeout_s))
            done, _ = await asyncio.wait({shutdown}, timeout=timeout_s)
            if done:
                shutdown.result()
            else:
                self._clean = False
                left = ", ".join(self.manager.unloading()) or "some models"
                log.error(
                    "%s still unloading after %.1fs (--exit-timeout-secs): exiting without waiting for them",
                    left,
                    timeout_s,
                )
                shutdown.cancel()
        if self.telemetry is not None and self._telemetry_started:
            self._telemetry_started = False
            await self.telemetry.stop()

    async def wait_for_termination(self) -> None:
        if self._grpc is not None:
            await self._grpc.wait_for_termination()

"""grpc.health.v1 Check: SERVING iff the server is ready (Triton ignores the `service` field too)."""

from __future__ import annotations

import logging

import grpc

from server.app.server_state import ServerState
from server.protocol.gen import health_pb2, health_pb2_grpc

log = logging.getLogger("hangar.health")


class HealthServicer(health_pb2_grpc.HealthServicer):
    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = health_pb2.HealthCheckResponse
        try:
            ready = self._state.ready
        except Exception:  # Triton answers UNKNOWN when the readiness check itself fails
            log.exception("readiness check failed")
            return status(status=status.UNKNOWN)
        return status(status=status.SERVING if ready else status.NOT_SERVING)

"""Server-wide liveness and readiness, shared by ServerLive/ServerReady and the health service."""

from __future__ import annotations

from server.repository.manager import ModelManager


class ServerState:
    """Live from construction until exit; ready when the manager says so and no shutdown has begun."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.shutting_down = False

    @property
    def live(self) -> bool:
        return True

    @property
    def ready(self) -> bool:
        return not self.shutting_down and self.manager.server_ready

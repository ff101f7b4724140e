"""ModelInstance: one TritonPythonModel object and its initialize / execute / finalize calls."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from server.backends.python.model_module import ModelModule
from server.errors import LoadError

log = logging.getLogger(__name__)


class ModelInstance:
    """Runs one model object; `execute` is always called from the instance's own worker thread.

    Coroutines (`async def execute`) run to completion on an event loop private to the instance.
    """

    def __init__(self, module: ModelModule, args: Mapping[str, str]) -> None:
        self.name = args["model_instance_name"]
        self._module = module
        self._args = dict(args)
        self._model: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def initialize(self) -> None:
        """Construct the model and call its `initialize(args)`.

        Raises:
            LoadError: the model raised; the message carries its exception text.
        """
        try:
            self._model = self._module.model_class()
            init = getattr(self._model, "initialize", None)
            if init is not None:
                self._wait(init(self._args))
        except BaseException as e:
            self._close()
            raise LoadError(
                f"failed to initialize instance '{self.name}' of model '{self._args['model_name']}': "
                f"{type(e).__name__}: {e}"
            ) from e

    @property
    def blocks_on_own_loop(self) -> bool:
        """`async def execute` runs on the instance's private loop, so it can never run on the server's."""
        return inspect.iscoroutinefunction(getattr(self._model, "execute", None))

    def execute(self, requests: list[Any]) -> Any:
        return self._wait(self._model.execute(requests))

    def finalize(self) -> None:
        """Call the model's `finalize()`; a failure there is logged, never raised."""
        try:
            fin = getattr(self._model, "finalize", None)
            if fin is not None:
                self._wait(fin())
        except Exception:
            log.exception("finalize of model instance '%s' failed", self.name)
        finally:
            self._close()

    def _wait(self, result: Any) -> Any:
        # a list (execute's usual answer) skips the slow, ABC-based awaitable check
        if result.__class__ is list or not inspect.isawaitable(result):
            return result
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(result)

    def _close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        self._module.unload()

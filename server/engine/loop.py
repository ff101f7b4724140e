"""The engine thread: schedule -> runner.execute -> update, with thread-safe intake and delivery."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence

from server.engine.config import EngineConfig
from server.engine.outputs import FinishReason, RequestOutput
from server.engine.request import Request, RequestStatus
from server.engine.runner import ModelRunner
from server.engine.sampling_params import SamplingParams
from server.engine.scheduler import Scheduler
from server.engine.stats import SchedulerStats
from server.errors import ConfigError, InvalidInput, ModelNotReady

logger = logging.getLogger(__name__)

OutputCallback = Callable[[RequestOutput], None]


class LoopState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DEAD = "dead"


class EngineLoop:
    """Runs one model's engine on a dedicated thread.

    Callers on any thread submit(), abort() and finish(); each request's `on_output` is called on the
    engine thread once per step in which it produced tokens, and exactly once with `finished` set.
    Callers on an asyncio loop bridge with `loop.call_soon_threadsafe`. A runner exception fails every
    in-flight request, marks the loop dead and refuses new work; it never hangs a caller.
    """

    def __init__(self, runner: ModelRunner, config: EngineConfig) -> None:
        if config.block_size != runner.block_size:
            raise ConfigError(f"engine block_size {config.block_size} != the runner's {runner.block_size}")
        if config.num_blocks > runner.num_blocks:
            raise ConfigError(
                f"engine num_blocks {config.num_blocks} > the runner's pool of {runner.num_blocks}"
            )
        if config.max_model_len > runner.max_model_len:
            raise ConfigError(
                f"engine max_model_len {config.max_model_len} > the runner's limit of {runner.max_model_len}"
            )
        self.config = config
        self._runner = runner
        self._scheduler = Scheduler(config, runner.vocab_size, runner.eos_token_ids)
        self._cond = threading.Condition()
        # Guarded by _cond: intake from callers, the set of ids not yet finally delivered, the state.
        self._new: list[tuple[Request, OutputCallback]] = []
        self._commands: list[tuple[str, RequestStatus]] = []
        self._live: set[str] = set()
        self._state = LoopState.NEW
        self._error: str | None = None
        # Engine thread only.
        self._callbacks: dict[str, OutputCallback] = {}
        self._thread: threading.Thread | None = None
        self._stats = self._scheduler.make_stats()

    # ---- caller side (any thread) ------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._state is not LoopState.NEW:
                raise RuntimeError(f"the engine loop cannot start from state {self._state.value}")
            self._state = LoopState.RUNNING
        self._thread = threading.Thread(target=self._run, name="hangar-engine", daemon=True)
        self._thread.start()

    def submit(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        sampling: SamplingParams,
        on_output: OutputCallback,
    ) -> None:
        """Queue a request; validates at once.

        Raises:
            ModelNotReady: the loop is not running (not started, shutting down, or crashed).
            InvalidInput: bad prompt or sampling settings, or `request_id` is already in flight.
            ResourceExhausted: the request could never fit in the KV pool.
        """
        self._check_running()
        request = self._scheduler.make_request(request_id, prompt_token_ids, sampling)
        with self._cond:
            self._check_running()
            if request_id in self._live:
                raise InvalidInput(f"request id {request_id!r} is already in flight")
            self._live.add(request_id)
            self._new.append((request, on_output))
            self._cond.notify()

    def abort(self, request_id: str) -> None:
        """Cancel a request: its blocks are freed at the next step and it gets a final ABORT output.
        Unknown or already finished ids are ignored."""
        self._command(request_id, RequestStatus.FINISHED_ABORTED)

    def finish(self, request_id: str) -> None:
        """End a request with STOP (the detokenizer saw a stop string). Tokens it may still deliver
        before the final output were generated after the stop string; the caller drops them."""
        self._command(request_id, RequestStatus.FINISHED_STOPPED)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the thread after its current step; every unfinished request gets a final ABORT."""
        with self._cond:
            if self._state is LoopState.NEW:
                self._state = LoopState.STOPPED
            elif self._state is LoopState.RUNNING:
                self._state = LoopState.STOPPING
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("engine thread busy %.1fs after shutdown; it stops after its step", timeout_s)

    @property
    def alive(self) -> bool:
        return self._state is LoopState.RUNNING

    @property
    def error(self) -> str | None:
        return self._error

    def stats(self) -> SchedulerStats:
        """The snapshot taken after the latest step (an immutable object; reading it is thread-safe)."""
        return self._stats

    def _check_running(self) -> None:
        state = self._state
        if state is LoopState.RUNNING:
            return
        if state is LoopState.DEAD:
            raise ModelNotReady(f"the engine has failed and accepts no requests: {self._error}")
        if state is LoopState.NEW:
            raise ModelNotReady("the engine has not been started")
        if state is LoopState.STOPPING:
            raise ModelNotReady("the engine is shutting down")
        raise ModelNotReady("the engine has shut down")

    def _command(self, request_id: str, status: RequestStatus) -> None:
        with self._cond:
            if request_id in self._live:
                self._commands.append((request_id, status))
                self._cond.notify()

    # ---- engine thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._next_work():
                self._step()
        except Exception as e:
            self._crash(e)
            return
        self._close()

    def _next_work(self) -> bool:
        """Wait (without spinning) until there is something to do; apply intake. False: shut down."""
        scheduler = self._scheduler
        with self._cond:
            while not (self._new or self._commands or self._state is not LoopState.RUNNING):
                if scheduler.has_requests():
                    break
                self._cond.wait()
            new, self._new = self._new, []
            commands, self._commands = self._commands, []
            stopping = self._state is not LoopState.RUNNING
        for request, on_output in new:
            self._callbacks[request.request_id] = on_output
            scheduler.add_request(request)
        if stopping:
            return False
        finals = [scheduler.finish_request(rid, status) for rid, status in commands]
        self._deliver([out for out in finals if out is not None])
        return True

    def _step(self) -> None:
        scheduler = self._scheduler
        if scheduler.has_requests():
            out = scheduler.schedule()
            if not out.items and not out.preempted_request_ids:
                raise RuntimeError(
                    f"the scheduler made no progress with {len(scheduler.waiting)} waiting and "
                    f"{len(scheduler.running)} running requests"
                )
            step_outputs = self._runner.execute(out.items) if out.items else []
            self._deliver(scheduler.update_from_output(out, step_outputs))
        self._stats = scheduler.make_stats()

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        finished = [o.request_id for o in outputs if o.finished]
        if finished:
            # Before the final callbacks run, so a caller may reuse the id as soon as it sees the end.
            with self._cond:
                self._live.difference_update(finished)
        for out in outputs:
            if out.finished:
                callback = self._callbacks.pop(out.request_id)
                self._release(out.request_id)
            else:
                callback = self._callbacks[out.request_id]
            try:
                callback(out)
            except Exception:
                logger.exception("on_output for request %r raised; the request is aborted", out.request_id)
                if not out.finished:
                    self._drop(out.request_id)

    def _drop(self, request_id: str) -> None:
        """Abort a request whose consumer is broken, without calling it again."""
        if self._scheduler.abort(request_id) is not None:
            self._callbacks.pop(request_id, None)
            self._release(request_id)
            with self._cond:
                self._live.discard(request_id)

    def _release(self, request_id: str) -> None:
        try:
            self._runner.release(request_id)
        except Exception:
            logger.exception("runner.release(%r) raised", request_id)

    def _close(self) -> None:
        self._end_all(RequestStatus.FINISHED_ABORTED, "the engine shut down before the request finished")
        with self._cond:
            self._state = LoopState.STOPPED
        self._stats = self._scheduler.make_stats()

    def _crash(self, exc: Exception) -> None:
        message = f"the engine failed: {type(exc).__name__}: {exc}"
        logger.error("%s; failing every in-flight request", message, exc_info=exc)
        with self._cond:
            self._state = LoopState.DEAD
            self._error = message
            new, self._new = self._new, []
            self._commands.clear()
        for request, on_output in new:
            self._callbacks[request.request_id] = on_output
            self._scheduler.requests.setdefault(request.request_id, request)
        self._end_all(RequestStatus.FINISHED_ERROR, message)

    def _end_all(self, status: RequestStatus, error: str) -> None:
        """Send every request still owed a final output one, even if the scheduler state is broken."""
        try:
            outputs = self._scheduler.finish_all(status, error)
        except Exception:
            logger.exception("the scheduler could not finish its requests; sending bare final outputs")
            outputs = []
        reason = FinishReason.ERROR if status is RequestStatus.FINISHED_ERROR else FinishReason.ABORT
        seen = {o.request_id for o in outputs}
        for rid in self._callbacks:
            if rid not in seen:
                outputs.append(RequestOutput(rid, (), None, True, reason, error, 0, 0, 0))
        self._deliver(outputs)

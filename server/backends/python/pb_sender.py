"""pb_utils.InferenceResponseSender: sends a request's responses from any thread the model likes."""

from __future__ import annotations

import threading

from server.backends.python.outputs import OutputAdapter
from server.backends.python.pb_response import InferenceResponse, TritonModelException
from server.errors import BackendError
from server.scheduling.batch import Batch
from server.scheduling.response_channel import ResponseChannel, error_response
from server.types import InferRequest, InferResponse

TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1


class ResponseSender:
    """Delivers responses of one request to its channel, in order, until the final flag closes it.

    Decoupled models send 0..N responses then the final flag (alone or with the last response);
    a non-decoupled model sends exactly one response, which is final whatever the flags say.
    """

    __slots__ = ("_adapter", "_channel", "_closed", "_decoupled", "_lock", "_request")

    def __init__(
        self,
        request: InferRequest,
        channel: ResponseChannel,
        adapter: OutputAdapter,
        decoupled: bool,
        lock: threading.Lock,
        closed: bool = False,
    ) -> None:
        self._request = request
        self._channel = channel
        self._adapter = adapter
        self._decoupled = decoupled
        self._lock = lock  # shared per model: it only orders one send against another
        self._closed = closed

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        final = bool(flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        if response is None and not final:
            raise TritonModelException(
                "send() needs a response, the TRITONSERVER_RESPONSE_COMPLETE_FINAL flag, or both"
            )
        req = self._request
        if response is None:
            out = InferResponse(req.model_name, req.model_version, req.id, final=True)
        else:
            out = self._adapter.to_domain(req, response, final or not self._decoupled)
        with self._lock:
            if self._closed:
                if response is None and not self._decoupled:
                    return  # the customary flags-only final after a non-decoupled model's one response
                raise TritonModelException("Unable to send response. Response sender has been closed.")
            self._closed = out.final
            if response is None and not self._decoupled:
                out = error_response(
                    req, BackendError(f"model '{req.model_name}' sent no response for request '{req.id}'")
                )
            self._channel.push(out)

    def is_cancelled(self) -> bool:
        return self._request.cancel.is_cancelled()

    def claim(self) -> bool:
        """Close the sender so `execute`'s return value answers the request; False if already answered."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            return True


class BatchSenders:
    """One batch's response senders, each built when the model first asks for it.

    Most non-decoupled models never call get_response_sender, so the common batch builds none; a sender
    asked for after `claim` already answered its request comes out closed, as a claimed one would be.
    """

    __slots__ = ("_adapter", "_batch", "_decoupled", "_lock", "_senders")

    def __init__(self, batch: Batch, adapter: OutputAdapter, decoupled: bool, lock: threading.Lock) -> None:
        self._batch = batch
        self._adapter = adapter
        self._decoupled = decoupled
        self._lock = lock
        # None: not built, still unanswered; False: answered by claim before any sender was built
        self._senders: list[ResponseSender | bool | None] = [None] * len(batch.requests)

    def get(self, index: int) -> ResponseSender:
        with self._lock:
            sender = self._senders[index]
            if isinstance(sender, ResponseSender):
                return sender
            built = ResponseSender(
                self._batch.requests[index],
                self._batch.channel(index),
                self._adapter,
                self._decoupled,
                self._lock,
                closed=sender is False,  # its request was already answered
            )
            self._senders[index] = built
            return built

    def claim(self, index: int) -> bool:
        """Like ResponseSender.claim for request `index`, without building its sender."""
        with self._lock:
            sender = self._senders[index]
            if sender is None:
                self._senders[index] = False
                return True
            if sender is False:
                return False
        assert isinstance(sender, ResponseSender)
        return sender.claim()

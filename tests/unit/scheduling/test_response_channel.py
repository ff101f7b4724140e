"""ResponseChannel: thread-safe delivery onto the loop, end after the final response."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import pytest

from server.errors import BackendError, Cancelled
from server.scheduling.response_channel import ResponseChannel, as_domain_error, deliver_all, error_response
from server.types import CancelToken, InferRequest, InferResponse


def resp(i: int, final: bool) -> InferResponse:
    return InferResponse("m", "1", str(i), final=final)


def test_pushes_from_threads_arrive_in_order_and_end_at_final() -> None:
    async def main() -> list[str]:
        channel = ResponseChannel(asyncio.get_running_loop())

        def produce() -> None:
            for i in range(5):
                channel.push(resp(i, final=False))
            channel.push(resp(5, final=True))
            channel.push(resp(6, final=True))  # after the final: never seen

        threading.Thread(target=produce).start()
        return [r.id async for r in channel]

    assert asyncio.run(asyncio.wait_for(main(), 10)) == ["0", "1", "2", "3", "4", "5"]


def test_deliver_all_reaches_every_channel() -> None:
    async def main() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        channels = [ResponseChannel(loop) for _ in range(3)]
        t = threading.Thread(target=deliver_all, args=([(c, resp(i, True)) for i, c in enumerate(channels)],))
        t.start()
        out = []
        for c in channels:
            out.append([r.id async for r in c])
        return out

    assert asyncio.run(asyncio.wait_for(main(), 10)) == [["0"], ["1"], ["2"]]


def test_error_responses_keep_domain_errors_and_wrap_others() -> None:
    request = InferRequest("m", "1", "r9", {})
    wrapped = error_response(request, KeyError("k"))
    assert wrapped.final and wrapped.id == "r9" and isinstance(wrapped.error, BackendError)
    assert str(wrapped.error) == "KeyError: 'k'"
    kept = Cancelled("gone")
    assert as_domain_error(kept) is kept


def test_closing_an_unfinished_channel_cancels_the_request() -> None:
    async def main() -> tuple[CancelToken, CancelToken]:
        loop = asyncio.get_running_loop()
        open_token, done_token = CancelToken(), CancelToken()
        unfinished = ResponseChannel(loop, open_token)
        unfinished.put_nowait(resp(0, final=False))
        async with contextlib.aclosing(unfinished) as it:
            async for _ in it:
                break
        finished = ResponseChannel(loop, done_token)
        finished.put_nowait(resp(1, final=True))
        async with contextlib.aclosing(finished) as it:
            assert [r.id async for r in it] == ["1"]
        return open_token, done_token

    open_token, done_token = asyncio.run(main())
    assert open_token.is_cancelled() and not done_token.is_cancelled()


def test_a_late_error_after_the_final_response_is_logged_not_dropped_silently(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        channel = ResponseChannel(loop)
        channel.put_nowait(InferResponse("m", "3", "r1", final=True))
        channel.put_nowait(InferResponse("m", "3", "r1", final=True, error=BackendError("boom")))
        answered = [r.id async for r in channel]
        channel.put_nowait(InferResponse("m", "3", "r1", final=True, error=BackendError("again")))
        return answered

    with caplog.at_level(logging.WARNING, logger="server.scheduling.response_channel"):
        assert asyncio.run(main()) == ["r1"]
    late = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(late) == 2
    assert "model 'm' version 3: request 'r1' was already answered" in late[0].getMessage()
    assert "boom" in late[0].getMessage() and "again" in late[1].getMessage()


def test_errors_after_the_client_left_are_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        channel = ResponseChannel(asyncio.get_running_loop(), CancelToken())
        await channel.aclose()
        channel.put_nowait(InferResponse("m", "1", "r2", final=True, error=Cancelled("gone")))

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

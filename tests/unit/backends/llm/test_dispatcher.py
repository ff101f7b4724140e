"""OutputDispatcher: items from other threads reach their queues in order, one loop wakeup per burst."""

from __future__ import annotations

import asyncio
import threading

from server.backends.llm.dispatcher import OutputDispatcher


def test_a_burst_from_another_thread_costs_one_wakeup() -> None:
    async def main() -> tuple[list[list[int]], int]:
        loop = asyncio.get_running_loop()
        dispatcher: OutputDispatcher[int] = OutputDispatcher(loop)
        queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(32)]
        drains = 0
        original = dispatcher._drain

        def counting_drain() -> None:
            nonlocal drains
            drains += 1
            original()

        dispatcher._drain = counting_drain  # type: ignore[method-assign]

        def engine_step() -> None:
            for step in range(3):
                for q in queues:
                    dispatcher.post(q, step)

        # The loop thread is blocked in join(), as if busy, so the whole burst lands before any drain runs.
        thread = threading.Thread(target=engine_step)
        thread.start()
        thread.join()
        got = [[await q.get() for _ in range(3)] for q in queues]
        return got, drains

    got, drains = asyncio.run(main())
    assert got == [[0, 1, 2]] * 32
    assert drains == 1


def test_posts_from_many_threads_all_arrive() -> None:
    async def main() -> list[int]:
        dispatcher: OutputDispatcher[int] = OutputDispatcher(asyncio.get_running_loop())
        queue: asyncio.Queue[int] = asyncio.Queue()
        threads = [
            threading.Thread(target=lambda i=i: [dispatcher.post(queue, i * 100 + k) for k in range(100)])
            for i in range(4)
        ]
        for t in threads:
            t.start()
        items = [await asyncio.wait_for(queue.get(), 10) for _ in range(400)]
        for t in threads:
            t.join()
        return items

    items = asyncio.run(main())
    assert sorted(items) == list(range(400))
    for i in range(4):
        mine = [x for x in items if x // 100 == i]
        assert mine == sorted(mine)

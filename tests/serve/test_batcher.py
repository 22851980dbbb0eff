"""mnistlab.serve.batcher: concurrent requests answered together by one batch call, within its limits."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from mnistlab.serve.batcher import Batcher, BatchStats, QueueFull  # noqa: E402


def doubler(calls: list):
    def run(items):
        calls.append(list(items))
        return [2 * i for i in items]

    return run


async def started(b: Batcher) -> Batcher:
    b.start()
    return b


def test_concurrent_items_share_one_batch_in_order():
    async def main():
        calls: list = []
        b = await started(Batcher(doubler(calls), max_batch=8, max_wait_ms=200, max_queue=16, expected=lambda: 5))
        try:
            results = await asyncio.gather(*(b.submit(i) for i in range(5)))
        finally:
            await b.stop()
        return results, calls, b.stats

    results, calls, stats = asyncio.run(main())
    assert results == [0, 2, 4, 6, 8] and calls == [[0, 1, 2, 3, 4]]
    assert (stats.batches, stats.items, stats.largest) == (1, 5, 5)


def test_batches_hold_at_most_max_batch():
    async def main():
        calls: list = []
        b = await started(Batcher(doubler(calls), max_batch=3, max_wait_ms=50, max_queue=16))
        try:
            await asyncio.gather(*(b.submit(i) for i in range(7)))
        finally:
            await b.stop()
        return calls

    calls = asyncio.run(main())
    assert sorted(i for c in calls for i in c) == list(range(7)) and max(map(len, calls)) == 3


def test_a_lone_request_does_not_wait_for_company():
    async def main():
        b = await started(Batcher(doubler([]), max_batch=8, max_wait_ms=10_000, max_queue=4, expected=lambda: 1))
        try:
            return await asyncio.wait_for(b.submit(21), 5)
        finally:
            await b.stop()

    assert asyncio.run(main()) == 42


def test_an_error_reaches_every_request_of_its_batch_and_the_batcher_goes_on():
    state = {"fail": True}

    def run(items):
        if state.pop("fail", False):
            raise RuntimeError("boom")
        return items

    async def main():
        b = await started(Batcher(run, max_batch=4, max_wait_ms=100, max_queue=8, expected=lambda: 2))
        try:
            first = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
            return first, await b.submit(3)
        finally:
            await b.stop()

    first, after = asyncio.run(main())
    assert [str(e) for e in first] == ["boom", "boom"] and after == 3


def test_a_full_queue_and_a_batcher_not_started_are_refused():
    async def main():
        b = Batcher(doubler([]), max_batch=1, max_wait_ms=0, max_queue=1)
        with pytest.raises(RuntimeError, match="start"):
            await b.submit(1)
        b._queue = asyncio.Queue(maxsize=1)  # started, but with no worker draining it
        waiting = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="1 requests are already waiting"):
            await b.submit(2)
        await b.stop()  # what still waits is told the server is going away
        with pytest.raises(QueueFull, match="shutting down"):
            await waiting

    asyncio.run(main())
    with pytest.raises(ValueError):
        Batcher(doubler([]), max_batch=0, max_wait_ms=1, max_queue=1)


def test_batch_stats_keep_the_last_sizes():
    s = BatchStats()
    for n in (1, 5, 2):
        s.record(n, keep=2)
    assert (s.batches, s.items, s.largest, s.sizes) == (3, 8, 5, [5, 2])

"""mnistlab.serve.pool: preparation in threads of their own, each image against a deadline."""

from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from mnistlab.serve.pool import Overrun, PoolFull, PreparePool  # noqa: E402


def test_results_and_errors_come_back_to_the_caller():
    async def main():
        pool = PreparePool(2, timeout_s=5)
        assert await pool.run(lambda a, b: (a + b, threading.current_thread().name), 2, 3) == (5, "mnistlab-prepare")
        with pytest.raises(KeyError, match="missing"):
            await pool.run(lambda: {}["missing"])
        return pool.healthy()

    assert asyncio.run(main())


def test_an_overrun_is_answered_at_once_and_its_worker_counted_stuck():
    release = threading.Event()

    async def main():
        pool = PreparePool(1, timeout_s=0.05)
        with pytest.raises(Overrun, match="over 0.05 s"):
            await pool.run(release.wait, 10)
        assert not pool.healthy() and len(pool.stuck) == 1
        with pytest.raises(PoolFull, match="all 1 image workers are stuck"):
            await pool.run(lambda: 1)
        release.set()
        for _ in range(100):  # the stuck thread ends: the pool is healthy again
            if pool.healthy():
                break
            await asyncio.sleep(0.01)
        return await pool.run(lambda: "again")

    assert asyncio.run(main()) == "again"


def test_at_most_workers_run_at_once():
    active, peak = [0], [0]
    lock = threading.Lock()
    pair = threading.Barrier(2, timeout=5)  # each worker waits for a second one: two must run side by side

    def work():
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        pair.wait()
        with lock:
            active[0] -= 1

    async def main():
        pool = PreparePool(2, timeout_s=10)
        await asyncio.gather(*(pool.run(work) for _ in range(6)))

    asyncio.run(main())
    assert peak[0] == 2

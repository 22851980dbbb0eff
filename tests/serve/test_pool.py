"""mnistlab.serve.pool: preparation in worker processes, each image against a deadline; an overrun kills its worker."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

import slow_work  # noqa: E402

from mnistlab.serve.pool import Overrun, PreparePool  # noqa: E402


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_results_and_errors_come_back_from_a_worker_process():
    async def main():
        pool = PreparePool(2, timeout_s=30)
        await pool.start()
        try:
            pid, total = await pool.run(slow_work.pid_and_sum, 2, 3)
            with pytest.raises(KeyError, match="missing"):
                await pool.run(slow_work.missing)
            return pid, total, pool.healthy()
        finally:
            await pool.close()

    pid, total, healthy = asyncio.run(main())
    assert total == 5 and pid != os.getpid() and healthy


def test_what_a_job_uses_is_built_once_per_worker_and_an_error_keeps_the_worker(tmp_path):
    """A `using` (the server's `Reader`) is built by a worker's first job that names it and kept for the next ones;
    a job that raises leaves its worker (and what it built) to the next job, not killed and replaced."""
    log = tmp_path / "built"

    async def main():
        pool = PreparePool(1, timeout_s=30)
        await pool.start()
        try:
            using = (slow_work.built, (str(log),))
            first = await pool.run(slow_work.pid_and_kept, using=using)
            with pytest.raises(KeyError, match="missing"):
                await pool.run(slow_work.missing)
            again = await pool.run(slow_work.pid_and_kept, using=using)
            return first, again, pool.started, pool.killed
        finally:
            await pool.close()

    first, again, started, killed = asyncio.run(main())
    assert first == again and (started, killed) == (1, 0)  # one process, the same object in it
    assert log.read_text().split() == [str(first[0])]  # built once


def test_an_overrun_kills_its_worker_and_a_new_one_takes_its_place(tmp_path):
    """Issue 28 row 1: the worker that overran is really stopped (its process is gone), and the pool's one place
    is free at once for the next image, in a new process."""
    pid_file = tmp_path / "pid"

    async def main():
        pool = PreparePool(1, timeout_s=1)
        await pool.start()
        try:
            with pytest.raises(Overrun, match="over 1 s"):
                await pool.run(slow_work.stall, str(pid_file))
            assert pool.killed == 1 and pool.healthy()
            pid, total = await pool.run(slow_work.pid_and_sum, 1, 1)  # no wait for the stalled one
            return pid, total
        finally:
            await pool.close()

    pid, total = asyncio.run(main())
    stalled = int(pid_file.read_text())
    for _ in range(500):  # killed with SIGKILL, reaped in a thread
        if not alive(stalled):
            break
        time.sleep(0.01)
    assert not alive(stalled) and pid != stalled and total == 2


def test_at_most_workers_processes():
    async def main():
        pool = PreparePool(2, timeout_s=30)
        await pool.start()
        try:
            pids = await asyncio.gather(*(pool.run(slow_work.pid_after, 0.05) for _ in range(8)))
            return set(pids), pool.started
        finally:
            await pool.close()

    pids, started = asyncio.run(main())
    assert 1 <= len(pids) <= 2 and started == 2

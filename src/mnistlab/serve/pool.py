"""The server's preparation workers: a few processes, each image against a deadline; one that overruns is killed and
replaced (issues 19 and 28)."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import threading
from collections.abc import Callable
from typing import cast

PRELOAD = "mnistlab.serve.reading"  # what every worker needs, imported once by the fork server: no torch, no FastAPI
# seconds a worker may take to build what a job's `using` names (a `Reader`: its runtimes imported, two networks
# loaded; about 1 s, 7-8 s measured with torch's finder on a loaded 2-core machine), apart from the image's deadline
BUILD_TIMEOUT_S = 60.0


class PoolFull(Exception):
    """No worker process could be started (answered 503)."""


class Overrun(Exception):
    """An image took longer than the deadline to prepare: answered 422; its worker was killed, a new one takes its
    place."""


class WorkerLost(Exception):
    """The worker process died while preparing an image (a crash in C, the kernel's OOM killer): answered 422."""


def _serve(conn) -> None:
    """A worker process's loop: (function, args, using) in, (True, result) or (False, exception) out, until None or
    EOF. `using` (None, or a hashable (factory, factory's args)) names what the function takes first: built by the
    factory on the first job that names it, then kept for this process's lifetime (a `Reader`: its networks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server decides, not us
    made: dict = {}  # what `using`s built in this process, by `using`
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if job is None:
            return
        fn, args, using = job
        try:
            if using is not None and using not in made:
                made[using] = using[0](*using[1])
            reply = (True, fn(*((made[using],) if using is not None else ()), *args))
        except BaseException as e:  # handed to the request, raised there
            reply = (False, e)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as e:  # an answer that cannot be pickled: its error, as a line
            conn.send((False, RuntimeError(f"{type(e).__name__}: {e}")))


def _kept(kept) -> None:
    """A job that only builds its `using` (see `_serve`): run before a worker's first image that needs it."""


def _context():
    """The fork server where the platform has one (a worker is forked from a process that has imported PRELOAD
    alone: a few ms, and no copy of the server's threads or torch), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([PRELOAD])
        return ctx
    return multiprocessing.get_context("spawn")


class Worker:
    """One worker process and the pipe to it; `call` blocks (run it in a thread of its own)."""

    def __init__(self, ctx) -> None:
        self.built: set[tuple] = set()  # the `using`s this process has built
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), name="mnistlab-prepare", daemon=True)
        self.process.start()
        child.close()

    def call(self, fn: Callable, args: tuple, using: tuple | None = None) -> tuple[bool, object]:
        """(True, what `fn` gave) or (False, the exception it raised): the worker is fine either way."""
        self.conn.send((fn, args, using))
        return self.conn.recv()

    def kill(self) -> None:
        """SIGKILL: C code (Pillow, SciPy) cannot be interrupted any other way; the process is reaped after."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(1)
        self.kill()


class PreparePool:
    """Runs a function in a worker process, at most `workers` at once (others wait their turn; the server's
    `max_queue` bounds how many), each within `timeout_s` from its start.

    Decoding and preparing run in C that Python cannot interrupt, so the work runs in processes: one that overruns
    is killed at its deadline (its CPU and memory are freed at once) and a fresh one started in its place, so an
    image that overran holds nothing afterwards (issue 28: threads left running had kept every place, and /healthz
    at 503, for about 170 s). An exception the function raises is the request's answer, and leaves its worker as it
    was, with what its jobs' `using` built (the `Reader` of /v1/read). `start` starts the workers; `healthy()` never
    waits."""

    def __init__(self, workers: int, timeout_s: float):
        self.workers, self.timeout_s = workers, timeout_s
        self.turns = asyncio.Semaphore(workers)
        self.idle: asyncio.LifoQueue[Worker | None] = asyncio.LifoQueue()  # last in, first out: the worker used last
        # goes next (it holds what `using` built); None: a start failed (a waiter tries itself)
        self.count = 0  # worker processes alive or being started, at most `workers`
        self.started = self.killed = 0  # worker processes started, and killed for overrunning (tests count them)
        self.error = ""  # why the last worker could not be started ("" once one has)
        self._ctx = None
        self._tasks: set[asyncio.Task] = set()

    def healthy(self) -> bool:
        return not self.error

    async def start(self) -> None:
        """Start the workers (in threads: the first start launches the fork server), the event loop going on."""
        while self.count < self.workers:
            self._replace()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        workers = []
        while not self.idle.empty():
            if (worker := self.idle.get_nowait()) is not None:
                workers.append(worker)
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))

    async def run(self, fn: Callable, *args, using: tuple | None = None):
        """`fn(*args)` in a worker process (`fn(kept, *args)` with `using`: see `_serve`); what it raises is raised
        here, and its worker, unharmed, serves the next image (it keeps what `using` built)."""
        async with self.turns:
            worker = await self._take()
            try:
                ok, result = True, None
                if using is not None and using not in worker.built:  # built first, within a deadline of its own
                    ok, result = await self._run(worker, _kept, (), using, BUILD_TIMEOUT_S, "to start reading")
                if ok:
                    worker.built.update(() if using is None else (using,))
                    ok, result = await self._run(worker, fn, args, using, self.timeout_s, "to prepare")
            except BaseException:  # overran, died, or the request was cancelled: the worker is not reused
                self._later(asyncio.to_thread(worker.kill))
                self.count -= 1
                self._replace()
                raise
            self.idle.put_nowait(worker)
            if not ok:
                raise cast(BaseException, result)
            return result

    async def _run(self, worker: Worker, fn: Callable, args: tuple, using: tuple | None, timeout_s: float, what: str):
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def work():
            try:
                result, error = worker.call(fn, args, using), None
            except (EOFError, OSError):  # killed, by us at its deadline or by something else
                result, error = None, WorkerLost("the worker preparing the image died")
            except BaseException as e:
                result, error = None, e
            try:
                loop.call_soon_threadsafe(_settle, done, result, error)
            except RuntimeError:  # the server stopped meanwhile: nobody waits for it
                pass

        threading.Thread(target=work, name="mnistlab-prepare-wait", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout_s)
        except TimeoutError:
            done.add_done_callback(lambda f: f.cancelled() or f.exception())  # its late error is nobody's
            self.killed += 1
            raise Overrun(f"the image took over {timeout_s:g} s {what}") from None

    async def _take(self) -> Worker:
        """An idle worker that is alive (one may have been killed from outside), else a new one where fewer than
        `workers` are there, else the next one to be started or freed."""
        while True:
            if self.idle.empty() and self.count < self.workers:
                self.count += 1
                try:
                    return await self._new()
                except BaseException:
                    self.count -= 1
                    raise
            worker = await self.idle.get()
            if worker is not None and worker.process.is_alive():
                return worker
            if worker is not None:
                self._later(asyncio.to_thread(worker.kill))
                self.count -= 1

    async def _new(self) -> Worker:
        try:
            if self._ctx is None:
                self._ctx = _context()
            worker = await asyncio.to_thread(Worker, self._ctx)
        except (OSError, ValueError, RuntimeError) as e:  # no memory, no processes left, ...
            self.error = f"cannot start an image worker: {e}"
            raise PoolFull(self.error) from None
        self.started += 1
        self.error = ""
        return worker

    def _replace(self) -> None:
        """Start a worker in the background for a place that has none."""
        self.count += 1

        async def add():
            try:
                self.idle.put_nowait(await self._new())
            except BaseException:  # said by /healthz; a waiting image tries again
                self.count -= 1
                self.idle.put_nowait(None)
                raise

        self._later(add())

    def _later(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # (retrieved: a failed start is told by /healthz, not by asyncio's log)


def _settle(done: asyncio.Future, result, error) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)

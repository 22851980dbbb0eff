"""The server's preparation workers: a bounded number of threads, each image against a deadline (issue 19)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class PoolFull(Exception):
    """Every worker is stuck on an image that overran: the request is answered 503 at once."""


class Overrun(Exception):
    """An image took longer than the deadline to prepare: answered 422; its worker's place is given to a new one."""


class PreparePool:
    """Runs a function in a thread of its own, at most `workers` at once (others wait their turn; the server's
    `max_queue` bounds how many), each within `timeout_s` from its start.

    Decoding and preparing run in C (Pillow, scipy) that Python cannot interrupt, so a worker that overruns is left
    to finish on its own and a fresh thread takes its place; it is counted as `stuck` until it ends. With
    `workers` of them stuck, the server cannot prepare anything in time: `healthy()` is False and /healthz says so.
    Preparation never shares a thread with the forward pass (the batcher's own thread) or the event loop.
    """

    def __init__(self, workers: int, timeout_s: float):
        self.workers, self.timeout_s = workers, timeout_s
        self.turns = asyncio.Semaphore(workers)
        self.stuck: set[threading.Thread] = set()

    def healthy(self) -> bool:
        self.stuck = {t for t in self.stuck if t.is_alive()}
        return len(self.stuck) < self.workers

    async def run(self, fn: Callable, *args):
        if not self.healthy():
            raise PoolFull(f"all {self.workers} image workers are stuck on images that overran")
        async with self.turns:
            return await self._run(fn, *args)

    async def _run(self, fn: Callable, *args):
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def work():
            try:
                result, error = fn(*args), None
            except BaseException as e:  # handed to the request, raised there
                result, error = None, e
            try:
                loop.call_soon_threadsafe(_settle, done, result, error)
            except RuntimeError:  # the server stopped while this image overran: nobody waits for it
                pass

        thread = threading.Thread(target=work, name="mnistlab-prepare", daemon=True)
        thread.start()
        try:
            return await asyncio.wait_for(asyncio.shield(done), self.timeout_s)
        except TimeoutError:
            done.add_done_callback(lambda f: f.cancelled() or f.exception())  # its late error is nobody's
            self.stuck.add(thread)  # its turn goes to the next image, in a new thread
            raise Overrun(f"the image took over {self.timeout_s:g} s to prepare") from None


def _settle(done: asyncio.Future, result, error) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)

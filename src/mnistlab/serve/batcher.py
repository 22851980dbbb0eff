"""Dynamic batching: requests waiting together are answered by one call of a batch function, run off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The batcher holds as many requests as it may; the caller should answer 503 and ask the client to retry."""


@dataclass
class BatchStats:
    """What the batcher has done so far (for tests and /v1/model): batches run, items answered, the largest batch."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list, repr=False)  # the last few batch sizes, newest last

    def record(self, n: int, keep: int = 1000) -> None:
        self.batches += 1
        self.items += n
        self.largest = max(self.largest, n)
        self.sizes.append(n)
        del self.sizes[:-keep]


class Batcher:
    """Collects items `submit`ted concurrently and answers them with `run(items) -> results` (one result per item,
    in order), called in a thread of its own (never shared with image preparation) with at most `max_batch` items.
    A batch starts when the first item arrives and is run when it is full or `max_wait_ms` after that item,
    whichever comes first; `max_batch=1` turns batching off. With `expected` (a function: how many items are on
    their way, counting those already submitted), a batch that holds them all is run at once: a lone request does
    not wait `max_wait_ms` for company that is not coming. At most `max_queue` items may wait; `submit` raises
    `QueueFull` beyond that. An exception from `run` is raised by every `submit` of that batch; the batcher keeps
    serving. `observe(n)`, if given, is told the size of each batch run (for /metrics).

    Create it, `start()` it inside the running event loop, and `await stop()` when done.
    """

    def __init__(
        self,
        run: Callable[[Sequence[Any]], Sequence[Any]],
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        expected: Callable[[], int] | None = None,
        observe: Callable[[int], None] | None = None,
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait_ms at least 0")
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.max_queue, self.expected, self.observe = max_queue, expected, observe
        self.stats = BatchStats()
        self._uncounted: set[asyncio.Future[Any]] = set()  # the warm-up's: left out of stats and observe
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._stopping = False

    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="mnistlab-forward")
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="mnistlab-batcher")

    async def stop(self) -> None:
        self._stopping = True  # as well as cancelling: Python 3.11's wait_for can swallow a cancellation
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(QueueFull("the server is shutting down"))

    @property
    def waiting(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def submit(self, item: Any, counted: bool = True) -> Any:
        """The result for `item`, computed in a batch with whatever else is waiting; with `counted=False` (a
        warm-up) the item is left out of `stats` and `observe`."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        if not counted:
            self._uncounted.add(future)
            future.add_done_callback(self._uncounted.discard)
        try:
            self._queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are already waiting") from None
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future[Any]]]:
        queue = self._queue
        assert queue is not None  # _work runs only once start() has made the queue
        batch = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_batch:
            if self.expected is not None and len(batch) >= self.expected():
                break  # nothing else is on its way
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                while len(batch) < self.max_batch and not queue.empty():  # take what is already there
                    batch.append(queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _work(self) -> None:
        while not self._stopping:
            batch = await self._collect()
            live = [(item, f) for item, f in batch if not f.done()]  # a client that went away cancelled its future
            if not live:
                continue
            try:
                items = [item for item, _ in live]
                results = await asyncio.get_running_loop().run_in_executor(self._thread, self.run, items)
            except Exception as e:  # handed to each waiting request; the worker goes on
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            n = sum(f not in self._uncounted for _, f in live)
            if n:
                self.stats.record(n)
                if self.observe is not None:
                    self.observe(n)
            for (_, f), result in zip(live, results):
                if not f.done():
                    f.set_result(result)

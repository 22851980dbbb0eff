"""What one server holds and may accept: its `Limits` (declared in serve.limits), and the `State` its routes share.

On the onnx engine the batches run on onnxruntime and torch is imported only for what needs the torch network:
explanations (input gradients) and /v1/model's layers and parameter count, from the same weights, on first use."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Annotated

import numpy as np
from fastapi import Depends, Request

from mnistlab.errors import one_line
from mnistlab.images.preprocess import Candidate
from mnistlab.infer.classifier import Classifier, load
from mnistlab.infer.onnx_net import LAYERS, PARAMS
from mnistlab.pixels import is_tensor
from mnistlab.serve.batcher import Batcher
from mnistlab.serve.limits import Limits
from mnistlab.serve.metrics import Metrics
from mnistlab.serve.pool import Overrun, PoolFull, PreparePool, WorkerLost
from mnistlab.serve.reading import read_upload, reader
from mnistlab.serve.uploads import NAME, RETRY_AFTER, ApiError, Reading, image_bytes, prepare_upload

__all__ = ["RETRY_AFTER", "Limits", "Served", "State", "state"]


class State:
    """Everything one app holds: the classifier (None while loading), whether a warm-up batch has run, the
    admission semaphore, the preparation pool, the batcher and the metrics. The semaphore and the pool belong to
    the event loop, so `start` makes them there."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.classifier: Classifier | None = None
        self._torch: Classifier | None = None  # the torch network of the weights served (explanations, layers)
        self._layers: list[dict] | None = None
        self._torch_lock = threading.Lock()  # explanations run in threads: the torch network is loaded once
        self.predicting = 0  # requests in /v1/predict: read, prepared or waiting for their batch
        self.metrics = Metrics(
            in_flight=lambda: self.in_flight, queue_depth=lambda: self.batcher.waiting,
            reading=lambda: self.reading.bodies,
        )  # fmt: skip
        self.batcher = Batcher(
            self.forward, limits.max_batch, limits.max_wait_ms, limits.max_queue,
            expected=lambda: self.predicting, observe=self.metrics.batch,
        )  # fmt: skip
        self.warm = False  # a warm-up batch has run through the batcher (/readyz)
        self.warm_error = ""
        self.admission = asyncio.Semaphore(limits.max_queue)
        self.reading = Reading(limits.max_reading)
        self.pool = PreparePool(limits.prepare_workers, limits.prepare_timeout_s)
        self.loading: asyncio.Task | None = None
        self.load_error = ""

    def start(self) -> None:
        self.admission = asyncio.Semaphore(self.limits.max_queue)
        self.pool = PreparePool(self.limits.prepare_workers, self.limits.prepare_timeout_s)
        self.batcher.start()

    @property
    def in_flight(self) -> int:
        return self.limits.max_queue - self.admission._value

    def ready(self, classifier: Classifier) -> None:
        self.classifier, self._layers = classifier, None
        self._torch = classifier if classifier.engine == "torch" else None
        if self._torch is not None:
            self._layers = self.layers  # at once: nothing to load

    @property
    def layers(self) -> list[dict]:
        """The receptive-field walk of the served network's spatial layers ([] while it loads)."""
        if self._layers is None and self.classifier is not None:
            self._layers = self._stored(LAYERS)
        if self._layers is None and self.classifier is not None:
            from mnistlab.explain.analysis import unit_geometry

            self._layers = unit_geometry(self.torch_model().model)
        return self._layers or []

    def params(self) -> int:
        """The served network's parameter count."""
        stored = self._stored(PARAMS)
        return stored if isinstance(stored, int) else sum(p.numel() for p in self.torch_model().model.parameters())

    def _stored(self, key: str):
        """What the ONNX file served stores under `key` (no torch needed); None on the torch engine."""
        return self.classifier.model.stored(key) if self.classifier and self.classifier.engine == "onnx" else None

    def torch_model(self) -> Classifier:
        """The served classifier on torch: itself on the torch engine; on onnxruntime, the same weights loaded
        with torch on the CPU the first time something needs them (only the bundled model has both forms)."""
        clf = self.model()
        if self._torch is None:
            with self._torch_lock:
                if self._torch is None:
                    if clf.source != "bundled":
                        raise ApiError(501, "this server reads an ONNX file: explanations need the torch weights")
                    self._torch = load(None, device="cpu", engine="torch")
        return self._torch

    async def warm_up(self) -> None:
        """One blank image through the batcher, left out of its stats (the first forward pass is the slow one);
        `warm` once it has run."""
        try:
            await self.batcher.submit(np.zeros((1, 28, 28), np.float32), counted=False)
        except Exception as e:  # reported by /readyz
            self.warm_error = f"the warm-up batch failed: {one_line(e)}"
        else:
            self.warm = True

    def forward(self, stacks: Sequence[np.ndarray]) -> list:
        """Probabilities for a batch of requests' candidate stacks (K x 28 x 28 each), one forward pass (the
        batcher's function): tensors on the torch engine, arrays on onnxruntime."""
        probs = self.model().probabilities(np.concatenate(stacks))
        sizes = [len(s) for s in stacks]
        return list(probs.split(sizes)) if is_tensor(probs) else np.split(probs, np.cumsum(sizes)[:-1])

    def model(self) -> Classifier:
        """The classifier, or 503 while it loads (or when it could not be loaded)."""
        if self.classifier is None:
            message = self.load_error or "the model is still loading"
            raise ApiError(503, message, {"Retry-After": RETRY_AFTER}, reason="loading")
        return self.classifier

    async def admitted(self, handler):
        """`handler()`, holding one of the `max_queue` places while the request is handled (503 if none is free)."""
        self.model()
        if self.admission.locked():
            raise ApiError(503, f"busy: {self.in_flight} requests in hand", {"Retry-After": RETRY_AFTER})
        async with self.admission:
            return await handler()

    async def upload(self, request: Request) -> bytes:
        """The image's bytes, read in full (within `max_body`, `body_timeout_s` and `max_reading`) before the request
        asks for an admission place: a slow client holds a connection, never a place (issue 28)."""
        self.model()
        return await image_bytes(request, self.limits.max_body, self.limits.body_timeout_s, self.reading)

    async def candidates(self, data: bytes) -> tuple[Classifier, list[Candidate]]:
        """(classifier, candidate readings) of an image's bytes, prepared in the pool."""
        clf = self.model()
        return clf, await self._in_pool(prepare_upload, data, self.limits.max_pixels)

    async def read(self, data: bytes) -> tuple[Classifier, dict]:
        """(classifier, `read_upload`'s reading) of a picture's bytes: found and read in the pool, by the `Reader`
        each worker process builds once from the served weights (501 for a model that was not loaded from a file)."""
        clf = self.model()
        if clf.source is None:
            raise ApiError(501, "the model served was not loaded from a file: the workers cannot read numbers with it")
        if not clf.reads_digits:
            raise ApiError(501, f"the model served reads {', '.join(clf.classes[:3])}, ..., not digits: no numbers")
        using = (reader, (None if clf.source == "bundled" else clf.source,))
        return clf, await self._in_pool(read_upload, data, self.limits.max_pixels, using=using)

    async def _in_pool(self, fn, *args, using: tuple | None = None):
        """`fn(*args)` in the preparation pool, its failures as answers: 503 without a worker, 422 past the
        deadline or when the worker died."""
        try:
            return await self.pool.run(fn, *args, using=using)
        except PoolFull as e:
            raise ApiError(503, f"busy: {e}", {"Retry-After": RETRY_AFTER}) from None
        except Overrun as e:
            raise ApiError(422, f"{NAME} could not be read: {e}", reason="overran") from None
        except WorkerLost as e:
            raise ApiError(422, f"{NAME} could not be read: {e}", reason="worker_lost") from None


def state(request: Request) -> State:
    return request.app.state.mnistlab


Served = Annotated[State, Depends(state)]

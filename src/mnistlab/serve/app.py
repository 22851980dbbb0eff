"""The FastAPI app: `create_app` puts a `State` around a `Classifier`, the routes, the error handlers and the page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mnistlab.about import version
from mnistlab.errors import one_line
from mnistlab.infer.classifier import Classifier
from mnistlab.serve.limits import Limits
from mnistlab.serve.metrics import IMAGE_ROUTES
from mnistlab.serve.observe import ACCESS_LOGS, Observed, error_body
from mnistlab.serve.routes import router, static_dir
from mnistlab.serve.state import State
from mnistlab.serve.uploads import ApiError


def _error(request: Request, message: str, status: int, headers=None, reason: str = "") -> JSONResponse:
    """The JSON answer to an error, with the request's id; an image route's refusal is counted in /metrics."""
    if request.url.path in IMAGE_ROUTES:
        request.app.state.mnistlab.metrics.refuse(status, reason)
    rid = getattr(request.state, "request_id", None)
    return JSONResponse(error_body(message, rid), status_code=status, headers=headers)


async def _api_error(request: Request, e: ApiError):
    return _error(request, e.message, e.status, e.headers, e.reason)


async def _bad_request(request: Request, e: RequestValidationError):
    problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3])
    return _error(request, f"bad request: {problems}", 400)


async def _http_error(request: Request, e: StarletteHTTPException):
    return _error(request, str(e.detail), e.status_code, e.headers)


async def _internal(request: Request, e: Exception):  # a bug: still one JSON line, and the server goes on
    return _error(request, f"internal error: {one_line(e)}"[:300], 500)


def create_app(
    classifier: Classifier | Callable[[], Classifier],
    max_batch: int = Limits.max_batch,  # (each default is the one serve.limits declares)
    max_wait_ms: float = Limits.max_wait_ms,
    max_queue: int = Limits.max_queue,
    max_body: int = Limits.max_body,
    max_pixels: int = Limits.max_pixels,
    max_reading: int = Limits.max_reading,
    body_timeout_s: float = Limits.body_timeout_s,
    prepare_workers: int = Limits.prepare_workers,
    prepare_timeout_s: float = Limits.prepare_timeout_s,
    access_log: str = "off",
) -> FastAPI:
    """The app serving `classifier` (or the classifier a zero-argument callable loads, in a thread, after start-up:
    /healthz says 503 until it is there). Concurrent predictions are batched (`max_batch` images, waiting at most
    `max_wait_ms` for a batch to fill; `max_batch=1` turns batching off); at most `max_queue` requests are handled
    at once (more get 503); bodies over `max_body` bytes and images over `max_pixels` get 413, bodies slower than
    `body_timeout_s` 408. A body is read in full before its request asks for a place; the bodies being read hold
    at most `max_reading` bytes together (503 past it). Images are prepared by `prepare_workers` processes, each
    within `prepare_timeout_s` (422 past it, and the worker is killed and replaced). Once the model is there, one
    warm-up batch runs through the batcher (/readyz says 503 until it has). Every answer carries an X-Request-ID;
    `access_log` (off, text or json) writes a line per request to stderr; /metrics counts them."""
    if access_log not in ACCESS_LOGS:  # (checked here: the middleware is only built when the app starts)
        raise ValueError(f"access_log must be one of {', '.join(ACCESS_LOGS)}, not {access_log!r}")
    s = State(
        Limits(
            max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, max_body=max_body,
            max_pixels=max_pixels, max_reading=max_reading, body_timeout_s=body_timeout_s,
            prepare_workers=prepare_workers, prepare_timeout_s=prepare_timeout_s,
        )
    )  # fmt: skip

    app = FastAPI(
        title="mnistlab",
        summary="Read handwritten digits with the seed MNIST CNN",
        version=version(),
        lifespan=_lifespan(s, classifier),
        docs_url=None,  # FastAPI's /docs and /redoc pages load their scripts from a CDN: the schema alone is served
        redoc_url=None,
    )
    app.state.mnistlab = s
    for kind, handler in ((ApiError, _api_error), (RequestValidationError, _bad_request),
                          (StarletteHTTPException, _http_error), (Exception, _internal)):  # fmt: skip
        # the decorator, called: add_exception_handler's type wants handlers of any Exception, not of one kind
        app.exception_handler(kind)(handler)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(static_dir())), name="static")
    routes = frozenset(getattr(r, "path", "") for r in router.routes) | {"/openapi.json"}
    app.add_middleware(Observed, metrics=s.metrics, routes=routes, access_log=access_log)
    return app


def _lifespan(s: State, classifier: Classifier | Callable[[], Classifier]):
    """The app's start-up and shutdown: the batcher started, the model there (or loading in a thread), then one
    warm-up batch, neither holding start-up up; on shutdown the loading stopped and the batcher too."""

    async def load(loader):
        try:
            s.ready(await asyncio.to_thread(loader))
        except Exception as e:  # reported by /healthz; the server stays up to say so
            s.load_error = f"the model could not be loaded: {one_line(e)}"
            return
        await s.warm_up()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        s.start()
        await s.pool.start()
        if isinstance(classifier, Classifier):
            s.ready(classifier)
            s.loading = asyncio.get_running_loop().create_task(s.warm_up())
        else:
            s.loading = asyncio.get_running_loop().create_task(load(classifier))
        try:
            yield
        finally:
            if s.loading is not None:
                s.loading.cancel()
            await s.batcher.stop()
            await s.pool.close()

    return lifespan

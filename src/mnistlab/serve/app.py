"""The HTTP API and the drawing page: `create_app` builds the FastAPI app around a `Classifier` and a `Batcher`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from mnistlab.analysis import input_gradient, unit_geometry
from mnistlab.classifier import Classifier
from mnistlab.errors import UserError, one_line
from mnistlab.images import FORMATS, open_image
from mnistlab.output import result_row
from mnistlab.preprocess import Candidate, NoInkError, candidates
from mnistlab.serve.batcher import Batcher, QueueFull
from mnistlab.serve.pool import Overrun, PoolFull, PreparePool

MAX_BODY = 8 * 2**20  # bytes: a phone's JPEG fits, an upload that only wastes memory does not
MAX_PIXELS = 16_000_000  # an uploaded image's width x height, checked from its header (a 12 MP photo fits)
RETRY_AFTER = "1"  # seconds, sent with every 503
NAME = "the uploaded image"  # how error messages name the image
TopK = Annotated[int, Query(ge=1, le=10, description="how many classes to rank")]


class ApiError(Exception):
    """An answer other than 200: its status, its one-line message and any extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


# ---------------------------------------------------------------------------------------------------------------
# Schemas (what /openapi.json describes)


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong, on one line")


class Ranked(BaseModel):
    digit: int = Field(description="class index (the digit itself for MNIST)")
    label: str
    probability: float


class PredictionOut(BaseModel):
    digit: int = Field(description="the most likely class")
    label: str = Field(description="its name ('7' for digits)")
    probabilities: list[float] = Field(description="one per class, in class order, summing to 1")
    top_k: list[Ranked] = Field(description="the most likely classes, most likely first")
    seen: str = Field(description="the 28x28 image the network saw (white on black), as a PNG data URL")
    digit_score: float = Field(description="how digit-like the image is, 0 to 1 (the calibrated top probability)")
    is_digit: bool = Field(
        description='false: "not a digit" (the score is under the threshold stored with the weights)'
    )
    candidate: str = Field(description="which reading of the image won: 'all ink', 'without lines', ...")


class ReceptiveField(BaseModel):
    layer: str
    row: int
    col: int
    top: int = Field(description="the box on the 28x28 input: first row (may be negative with padding)")
    left: int
    size: int = Field(description="its side in input pixels (the layer's receptive field)")


class ExplanationOut(PredictionOut):
    heatmap: list[list[float]] = Field(
        description="28x28 values in [0, 1]: the input gradient's magnitude for the predicted class, scaled to 1"
    )
    receptive_field: ReceptiveField | None = Field(None, description="the box asked for with layer, row and col")


class LayerOut(BaseModel):
    layer: str
    kind: str
    size: int | None = Field(description="the output's side (n)")
    receptive_field: int | None = Field(description="rf: the side of the input square one output unit sees")
    jump: int | None = Field(description="j: input pixels between neighbouring output units")
    offset: int | None = Field(description="the first input row (or column) unit 0 sees")


class ModelOut(BaseModel):
    name: str
    source: str
    params: int
    classes: list[str]
    recipe: dict
    dataset: str | None
    test_accuracy: float | None
    layers: list[LayerOut] = Field(description="the receptive-field walk (mnistlab summary) of every spatial layer")
    batching: dict


class HealthOut(BaseModel):
    status: str


# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Limits:
    """What one server accepts and how it batches."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_body: int = MAX_BODY
    max_pixels: int = MAX_PIXELS
    body_timeout_s: float = 30.0  # a body must arrive in full within this long (8 MB at 2 Mbit/s does)
    prepare_workers: int = 4  # images prepared at once, each in a thread of its own ...
    prepare_timeout_s: float = 10.0  # ... within this long (a 16 MP photo takes about 1 s)


class _State:
    """Everything one app holds: the classifier (None while loading), the batcher, the requests in flight."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.classifier: Classifier | None = None
        self.layers: list[dict] = []
        self.in_flight = 0
        self.predicting = 0  # requests in /v1/predict: read, prepared or waiting for their batch
        self.batcher = Batcher(
            self.forward, limits.max_batch, limits.max_wait_ms, limits.max_queue, expected=lambda: self.predicting
        )
        self.pool = PreparePool(limits.prepare_workers, limits.prepare_timeout_s)  # made again in each lifespan
        self.loading: asyncio.Task | None = None
        self.load_error = ""

    def ready(self, classifier: Classifier) -> None:
        self.layers = unit_geometry(classifier.model)
        self.classifier = classifier

    def forward(self, stacks: list[np.ndarray]) -> list[torch.Tensor]:
        """Probabilities for a batch of requests' candidate stacks (K x 28 x 28 each), one forward pass (the
        batcher's function)."""
        probs = self.classifier.probabilities(np.concatenate(stacks))
        return list(probs.split([len(s) for s in stacks]))


def rf_box(layers: list[dict], layer: str, row: int, col: int) -> dict:
    """The input square that unit (row, col) of `layer`'s output sees; `ApiError` 400 for an unknown layer/unit."""
    known = {d["layer"]: d for d in layers if d["receptive_field"] is not None and d["offset"] is not None}
    if layer not in known:
        raise ApiError(400, f"layer must be one of {', '.join(known) or 'none'}, not {layer!r}")
    d = known[layer]
    if not (0 <= row < d["size"] and 0 <= col < d["size"]):
        raise ApiError(400, f"{layer}'s output is {d['size']}x{d['size']}; row and col go from 0 to {d['size'] - 1}")
    j, o = d["jump"], d["offset"]
    size = d["receptive_field"]
    return {"layer": layer, "row": row, "col": col, "top": o + row * j, "left": o + col * j, "size": size}


# ---------------------------------------------------------------------------------------------------------------
# Reading a request


async def read_body(request: Request, cap: int, timeout_s: float = 30.0) -> bytes:
    """The request's body, refused with 413 as soon as it is known to be over `cap` bytes, and with 408 when it has
    not arrived in full within `timeout_s` (a slow upload holds one of the server's places meanwhile)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise ApiError(413, f"the body is {int(length):,} bytes; the limit is {cap:,}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise ApiError(413, f"the body is over the limit of {cap:,} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout_s:g} s", {"Connection": "close"}) from None
    except ClientDisconnect:  # nobody is there to read the answer; it keeps the log free of a traceback
        raise ApiError(400, "the client went away before sending its whole body") from None
    return b"".join(chunks)


def _decode_base64(text: str) -> bytes:
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if ";base64" not in head:
            raise ApiError(400, "a data URL must be base64-encoded (data:image/png;base64,...)")
    text = "".join(text.split())  # MIME base64 breaks its lines every 76 characters
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image is not valid base64") from None


async def image_bytes(request: Request, cap: int, timeout_s: float = 30.0) -> bytes:
    """The image's encoded bytes from a multipart form (field `file`), a JSON object {"image": base64 or data URL}
    or the raw body. Malformed multipart or JSON, or no image at all, is a 400."""
    body = await read_body(request, cap, timeout_s)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":

        async def stream():
            yield body

        try:
            parser = MultiPartParser(request.headers, stream(), max_files=4, max_fields=16, max_part_size=cap)
            form = await parser.parse()
        except (MultiPartException, ValueError, KeyError) as e:
            raise ApiError(400, f"malformed multipart body: {one_line(e)}") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "the multipart body holds no file field named 'file'")
        data = await upload.read()
        await form.close()
    elif kind == "application/json":
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"malformed JSON: {one_line(e)}") from None
        except RecursionError:  # JSON nested deeper than the parser's stack (issue 19)
            raise ApiError(400, "malformed JSON: nested too deep") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
            raise ApiError(400, 'a JSON body must be an object {"image": "<base64 or data URL>"}')
        data = _decode_base64(obj["image"])
    else:
        data = body
    if not data:
        raise ApiError(400, "no image: the body (or its file) is empty")
    return data


def prepare_upload(data: bytes, max_pixels: int) -> list[Candidate]:
    """The candidate 28x28 images, as `mnistlab predict` makes them; 413 for a pixel bomb, 415 for what is not an
    image, 422 for an image without ink. Runs in a worker thread."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:  # the header only: nothing decoded yet
            width, height = im.size
    except Image.DecompressionBombError:
        raise ApiError(413, f"{NAME} has too many pixels; the limit is {max_pixels:,}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise ApiError(415, f"{NAME} is not an image in a format mnistlab reads ({', '.join(FORMATS)})") from None
    if width * height > max_pixels:
        raise ApiError(413, f"{NAME} is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
    try:
        img = open_image(data, NAME)
    except UserError as e:
        raise ApiError(415, str(e)) from None
    try:
        return candidates(img, name=NAME)
    except NoInkError as e:
        raise ApiError(422, str(e)) from None
    except UserError as e:
        raise ApiError(422, str(e)) from None


def png_data_url(seen: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(seen * 255), 0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def prediction(
    classifier: Classifier, probs: torch.Tensor, found: list[Candidate], top_k: int
) -> tuple[dict, np.ndarray]:
    """(the JSON answer, the 28x28 image of the winning candidate) from the candidates' probabilities."""
    p = classifier.prediction(probs, found, top_k)
    row = result_row("", p, classifier.classes)
    row.pop("file")
    return row | {"seen": png_data_url(p.seen)}, p.seen


def explanation(classifier: Classifier, seen: np.ndarray) -> np.ndarray:
    """The 28x28 input-gradient heat-map in [0, 1] of a prepared image."""
    _, heat = input_gradient(classifier.model, classifier.inputs(seen[None]))
    return heat.cpu().numpy()


# ---------------------------------------------------------------------------------------------------------------

_ERRORS = {
    code: {"model": ErrorOut, "description": what}
    for code, what in {
        400: "malformed multipart or JSON, no image, or a bad parameter",
        408: "the body did not arrive within the server's body timeout",
        413: "the body is over the size limit, or the image has too many pixels",
        415: "the body is not an image",
        422: "the image holds no ink or no digit, or took longer than the server's deadline to prepare",
        503: "the model is loading or the queue is full: retry after Retry-After seconds",
    }.items()
}

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "one image (PNG, JPEG, BMP, GIF, WebP, TIFF): a multipart form with a file field `file`, "
        'the raw bytes, or JSON {"image": "<base64 or data URL>"}',
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {"type": "object", "properties": {"image": {"type": "string"}}, "required": ["image"]}
            },
        },
    }
}


# what /v1/predict and /v1/explain share in the schema: the image body, the errors, the tag
_IMAGE_OPERATION = {
    "responses": {code: _ERRORS[code] for code in (400, 408, 413, 415, 422, 503)},
    "openapi_extra": _IMAGE_BODY,
    "tags": ["model"],
}


def static_dir():
    return resources.files("mnistlab.serve").joinpath("static")


def create_app(
    classifier: Classifier | Callable[[], Classifier],
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    max_queue: int = 256,
    max_body: int = MAX_BODY,
    max_pixels: int = MAX_PIXELS,
    body_timeout_s: float = Limits.body_timeout_s,
    prepare_workers: int = Limits.prepare_workers,
    prepare_timeout_s: float = Limits.prepare_timeout_s,
) -> FastAPI:
    """The app serving `classifier` (or the classifier a zero-argument callable loads, in a thread, after start-up:
    /healthz says 503 until it is there). Concurrent predictions are batched (`max_batch` images, waiting at most
    `max_wait_ms` for a batch to fill; `max_batch=1` turns batching off); at most `max_queue` requests are handled
    at once (more get 503); bodies over `max_body` bytes and images over `max_pixels` get 413, bodies slower than
    `body_timeout_s` 408. Images are prepared by `prepare_workers` threads, each within `prepare_timeout_s` (422
    past it; 503 when all are busy)."""
    state = _State(
        Limits(
            max_batch, max_wait_ms, max_queue, max_body, max_pixels, body_timeout_s, prepare_workers, prepare_timeout_s
        )
    )

    async def load(loader):
        try:
            state.ready(await asyncio.to_thread(loader))
        except Exception as e:  # reported by /healthz; the server stays up to say so
            state.load_error = f"the model could not be loaded: {one_line(e)}"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.pool = PreparePool(state.limits.prepare_workers, state.limits.prepare_timeout_s)  # (this loop's)
        state.batcher.start()
        if isinstance(classifier, Classifier):
            state.ready(classifier)
        else:
            state.loading = asyncio.get_running_loop().create_task(load(classifier))
        try:
            yield
        finally:
            if state.loading is not None:
                state.loading.cancel()
            await state.batcher.stop()

    app = FastAPI(
        title="mnistlab",
        summary="Read handwritten digits with the seed MNIST CNN",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs and /redoc pages load their scripts from a CDN: the schema alone is served
        redoc_url=None,
    )
    app.state.mnistlab = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, e: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3])
        return JSONResponse({"error": f"bad request: {problems}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):  # a bug: still one JSON line, and the server goes on
        return JSONResponse({"error": f"internal error: {one_line(e)}"[:300]}, status_code=500)

    def require_model() -> Classifier:
        if state.classifier is None:
            message = state.load_error or "the model is still loading"
            raise ApiError(503, message, {"Retry-After": RETRY_AFTER})
        return state.classifier

    async def admitted(request: Request):
        """(classifier, candidate readings) of a request."""
        clf = require_model()
        data = await image_bytes(request, state.limits.max_body, state.limits.body_timeout_s)
        try:
            found = await state.pool.run(prepare_upload, data, state.limits.max_pixels)
        except PoolFull as e:
            raise ApiError(503, f"busy: {e}", {"Retry-After": RETRY_AFTER}) from None
        except Overrun as e:
            raise ApiError(422, f"{NAME} could not be read: {e}") from None
        return clf, found

    async def guarded(handler):
        """`handler()`, holding one of the `max_queue` places while the request is handled (503 if none is free)."""
        require_model()
        if state.in_flight >= state.limits.max_queue:
            raise ApiError(503, f"busy: {state.in_flight} requests in hand", {"Retry-After": RETRY_AFTER})
        state.in_flight += 1
        try:
            return await handler()
        finally:
            state.in_flight -= 1

    @app.get("/healthz", response_model=HealthOut, responses={503: _ERRORS[503]}, tags=["server"])
    async def healthz():
        """200 once the model is loaded and the server answers predictions; 503 before, or when every image worker
        is stuck on an image that overran its deadline."""
        require_model()
        if not state.pool.healthy():
            message = f"cannot prepare images: all {state.pool.workers} workers are stuck on images that overran"
            raise ApiError(503, message, {"Retry-After": RETRY_AFTER})
        return {"status": "ok"}

    @app.get("/v1/model", response_model=ModelOut, responses={503: _ERRORS[503]}, tags=["model"])
    async def model_info():
        """The model served: its name, parameter count, recipe, test accuracy and receptive fields."""
        clf = require_model()
        card = clf.card
        acc = card.get("test_acc")
        return {
            "name": str((card.get("recipe") or {}).get("name", "")) if isinstance(card.get("recipe"), dict) else "",
            "source": clf.source or "",
            "params": sum(p.numel() for p in clf.model.parameters()),
            "classes": clf.classes,
            "recipe": card.get("recipe") if isinstance(card.get("recipe"), dict) else {},
            "dataset": card.get("dataset") if isinstance(card.get("dataset"), str) else None,
            "test_accuracy": float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None,
            "layers": state.layers,
            "batching": {
                "max_batch": state.limits.max_batch,
                "max_wait_ms": state.limits.max_wait_ms,
                "max_queue": state.limits.max_queue,
                "batches": state.batcher.stats.batches,
                "batched_requests": state.batcher.stats.items,
                "largest_batch": state.batcher.stats.largest,
            },
        }

    @app.post("/v1/predict", response_model=PredictionOut, **_IMAGE_OPERATION)
    async def predict(request: Request, top_k: TopK = 3):
        """The digit in one image, prepared as `mnistlab predict` prepares it; concurrent requests are batched."""

        async def handle():
            state.predicting += 1
            try:
                clf, found = await admitted(request)
                probs = await state.batcher.submit(np.stack([c.seen for c in found]))
            except QueueFull as e:
                raise ApiError(503, f"busy: {e}", {"Retry-After": RETRY_AFTER}) from None
            finally:
                state.predicting -= 1
            return prediction(clf, probs, found, top_k)[0]

        return await guarded(handle)

    @app.post("/v1/explain", response_model=ExplanationOut, **_IMAGE_OPERATION)
    async def explain(
        request: Request,
        top_k: TopK = 3,
        layer: Annotated[str | None, Query(description="a conv or pool layer (see /v1/model)")] = None,
        row: Annotated[int, Query(ge=0, description="the unit's row in that layer's output")] = 0,
        col: Annotated[int, Query(ge=0, description="the unit's column in that layer's output")] = 0,
    ):
        """The prediction and a heat-map of what drove it (input gradients); with `layer`, `row` and `col`, the
        square of the input that unit of that layer's output sees (its size from the receptive-field walk)."""

        async def handle():
            box = rf_box(state.layers, layer, row, col) if layer is not None else None
            clf, found = await admitted(request)
            probs = await asyncio.to_thread(clf.probabilities, np.stack([c.seen for c in found]))
            out, seen = prediction(clf, probs, found, top_k)
            heat = await asyncio.to_thread(explanation, clf, seen)
            out["heatmap"] = np.round(heat, 4).tolist()
            out["receptive_field"] = box
            return out

        return await guarded(handle)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(static_dir().joinpath("index.html"), media_type="text/html")

    for route in list(app.routes):  # HEAD wherever GET is (the answer without its body; not in the schema)
        if "GET" in getattr(route, "methods", ()) and hasattr(route, "endpoint") and route.path != "/openapi.json":
            app.add_api_route(route.path, route.endpoint, methods=["HEAD"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(static_dir())), name="static")
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnistlab")
    except PackageNotFoundError:
        return "0"

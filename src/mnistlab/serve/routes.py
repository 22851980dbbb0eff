"""The API's routes and the drawing page, at module level; each gets the app's `State` as a dependency."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import PurePath
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute

from mnistlab.images.preprocess import Candidate
from mnistlab.infer.classifier import Classifier
from mnistlab.infer.output import result_row
from mnistlab.serve.batcher import QueueFull
from mnistlab.serve.metrics import CONTENT_TYPE
from mnistlab.serve.reading import png_data_url
from mnistlab.serve.schemas import (
    ERRORS,
    IMAGE_BODY,
    IMAGE_ERRORS,
    METRICS_OUT,
    ExplanationOut,
    HealthOut,
    ModelOut,
    PredictionOut,
    ReadingOut,
)
from mnistlab.serve.state import RETRY_AFTER, Served
from mnistlab.serve.uploads import ApiError

TopK = Annotated[int, Query(ge=1, le=10, description="how many classes to rank")]
router = APIRouter()


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


def shown(where: str) -> str:
    """A path on the server as /v1/model shows it: its last part alone (the model file, a run folder's name, a
    `folder:` dataset's folder), so that clients do not learn the server's file layout (issue 28)."""
    kind, colon, path = where.partition(":") if where.startswith("folder:") else ("", "", where)
    return kind + colon + PurePath(path.replace("\\", "/")).name if ("/" in path or "\\" in path) else where


def prediction(classifier: Classifier, probs, found: list[Candidate], top_k: int) -> tuple[dict, np.ndarray]:
    """(the JSON answer, the 28x28 image of the winning candidate) from the candidates' probabilities."""
    p = classifier.prediction(probs, found, top_k)
    assert p.seen is not None  # Classifier.prediction always keeps the image it read
    row = result_row("", p, classifier.classes)
    row.pop("file")
    return row | {"seen": png_data_url(p.seen)}, p.seen


def explanation(classifier: Classifier, seen: np.ndarray) -> np.ndarray:
    """The 28x28 input-gradient heat-map in [0, 1] of a prepared image (`classifier` on the torch engine)."""
    from mnistlab.explain.analysis import input_gradient  # torch: imported by the first explanation on the onnx engine

    _, heat = input_gradient(classifier.model, classifier.inputs(seen[None]))
    return heat.cpu().numpy()


@router.get("/healthz", response_model=HealthOut, responses={503: ERRORS[503]}, tags=["server"])
async def healthz(s: Served):
    """200 once the model is loaded and the server answers predictions; 503 before, or when no image worker could
    be started (never waits for one: an image that overran had its worker killed)."""
    s.model()
    if not s.pool.healthy():
        raise ApiError(503, f"cannot prepare images: {s.pool.error}", {"Retry-After": RETRY_AFTER})
    return {"status": "ok"}


@router.get("/readyz", response_model=HealthOut, responses={503: ERRORS[503]}, tags=["server"])
async def readyz(s: Served):
    """200 once the model is loaded and one warm-up batch has run through the batcher; 503 before."""
    s.model()
    if not s.warm:
        message = s.warm_error or "the model is warming up"
        raise ApiError(503, message, {"Retry-After": RETRY_AFTER}, reason="warming")
    return {"status": "ready"}


@router.get("/metrics", response_class=Response, responses=METRICS_OUT, tags=["server"])
async def metrics(s: Served):
    """Requests by route and status, their latencies, batch sizes, queue depth and requests in flight, and images
    refused by reason, in Prometheus's text format (answered while the model loads too)."""
    return Response(s.metrics.text(), media_type=CONTENT_TYPE)


@router.get("/v1/model", response_model=ModelOut, responses={503: ERRORS[503]}, tags=["model"])
async def model_info(s: Served):
    """The model served: its name, parameter count, recipe, test accuracy and receptive fields."""
    clf = s.model()
    card = clf.card
    recipe = card.get("recipe")
    if not isinstance(recipe, dict):
        recipe = {}
    acc = card.get("test_acc")
    stats = s.batcher.stats
    layers, params = await asyncio.to_thread(_layers_and_params, s)
    if isinstance(recipe.get("dataset"), str):
        recipe = recipe | {"dataset": shown(recipe["dataset"])}
    dataset = card.get("dataset")
    return {
        "name": str(recipe.get("name", "")),
        "source": shown(clf.source or ""),
        "engine": clf.engine,
        "params": params,
        "classes": clf.classes,
        "recipe": recipe,
        "dataset": shown(dataset) if isinstance(dataset, str) else None,
        "test_accuracy": float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None,
        "layers": layers,
        "batching": {
            "max_batch": s.limits.max_batch,
            "max_wait_ms": s.limits.max_wait_ms,
            "max_queue": s.limits.max_queue,
            "batches": stats.batches,
            "batched_requests": stats.items,
            "largest_batch": stats.largest,
        },
    }


@router.post(
    "/v1/predict", response_model=PredictionOut, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY, tags=["model"]
)
async def predict(request: Request, s: Served, top_k: TopK = 3):
    """The digit in one image, prepared as `mnistlab predict` prepares it; concurrent requests are batched."""

    data = await s.upload(request)  # before a place is taken: a slow body holds none

    async def handle():
        s.predicting += 1
        try:
            clf, found = await s.candidates(data)
            probs = await s.batcher.submit(np.stack([c.seen for c in found]))
        except QueueFull as e:
            raise ApiError(503, f"busy: {e}", {"Retry-After": RETRY_AFTER}) from None
        finally:
            s.predicting -= 1
        return prediction(clf, probs, found, top_k)[0]

    return await s.admitted(handle)


@router.post("/v1/read", response_model=ReadingOut, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY, tags=["model"])
async def read_number(request: Request, s: Served):
    """Every digit in a picture (a photo of a number, a page), found and read whole: the number as a string, and
    each digit's box in the picture's pixels with its reading; a picture without digits gives "" and no digits.
    The work per picture is bounded: the finder sees a fixed-size copy, and at most its most likely boxes are read."""

    data = await s.upload(request)

    async def handle():
        clf, out = await s.read(data)
        return number_answer(clf, out)

    return await s.admitted(handle)


def number_answer(classifier: Classifier, out: dict) -> dict:
    """/v1/read's answer from a worker's `read_upload`: each digit marked with whether its digit score passes the
    served weights' threshold."""
    digits = [d | {"is_digit": d["digit_score"] >= classifier.threshold} for d in out["digits"]]
    return out | {"digits": digits}


@router.post(
    "/v1/explain", response_model=ExplanationOut, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY, tags=["model"]
)
async def explain(
    request: Request,
    s: Served,
    top_k: TopK = 3,
    layer: Annotated[str | None, Query(description="a conv or pool layer (see /v1/model)")] = None,
    row: Annotated[int, Query(ge=0, description="the unit's row in that layer's output")] = 0,
    col: Annotated[int, Query(ge=0, description="the unit's column in that layer's output")] = 0,
):
    """The prediction and a heat-map of what drove it (input gradients); with `layer`, `row` and `col`, the
    square of the input that unit of that layer's output sees (its size from the receptive-field walk)."""

    data = await s.upload(request)

    async def handle():
        box = rf_box(await asyncio.to_thread(lambda: s.layers), layer, row, col) if layer is not None else None
        clf, found = await s.candidates(data)
        probs = await asyncio.to_thread(clf.probabilities, np.stack([c.seen for c in found]))
        out, seen = prediction(clf, probs, found, top_k)
        heat = await asyncio.to_thread(lambda: explanation(s.torch_model(), seen))
        return out | {"heatmap": np.round(heat, 4).tolist(), "receptive_field": box}

    return await s.admitted(handle)


def _layers_and_params(s) -> tuple[list[dict], int]:
    """The served network's layers and parameter count: stored in the ONNX file on the onnx engine, else from its
    torch form (in a thread: loading that takes a while, and the event loop goes on meanwhile)."""
    return s.layers, s.params()


@router.get("/", include_in_schema=False)
async def index():
    return FileResponse(static_dir().joinpath("index.html"), media_type="text/html")


for _route in list(router.routes):  # HEAD wherever GET is (the answer without its body; not in the schema)
    if isinstance(_route, APIRoute) and "GET" in (_route.methods or ()):
        router.add_api_route(_route.path, _route.endpoint, methods=["HEAD"], include_in_schema=False)


def static_dir():
    return resources.files("mnistlab.serve").joinpath("static")

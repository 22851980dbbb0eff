"""What /openapi.json describes: the answers' shapes, the errors each operation may give, the image body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong, on one line")
    request_id: str = Field(description="the request's id, as in its X-Request-ID answer header and the access log")


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


class FoundDigitOut(BaseModel):
    box: list[float] = Field(description="x0, y0, x1, y1 in the picture's pixels (as `width` x `height` count them)")
    digit: int = Field(description="the most likely class")
    label: str = Field(description="its name ('7' for digits)")
    probability: float = Field(description="its calibrated probability")
    digit_score: float = Field(description="how digit-like the crop is, 0 to 1 (the calibrated top probability)")
    is_digit: bool = Field(description="the digit score is at least the threshold stored with the weights")
    found: float = Field(description="the finder's score that a digit is there, 0 to 1")
    probabilities: list[float] = Field(description="one per class, in class order, summing to 1")
    seen: str = Field(description="the 28x28 image the network read (white on black), as a PNG data URL")


class ReadingOut(BaseModel):
    number: str = Field(description='the digits in reading order ("2026"); numbers apart are joined by a space')
    width: int = Field(description="the picture's width in pixels (after its EXIF orientation)")
    height: int
    digits: list[FoundDigitOut] = Field(description="every digit found: lines top to bottom, each left to right")


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
    engine: str = Field(description="what runs the batches: onnx (onnxruntime) or torch (mnistlab serve --engine)")
    params: int
    classes: list[str]
    recipe: dict
    dataset: str | None
    test_accuracy: float | None
    layers: list[LayerOut] = Field(description="the receptive-field walk (mnistlab summary) of every spatial layer")
    batching: dict


class HealthOut(BaseModel):
    status: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what}
    for code, what in {
        400: "malformed multipart or JSON, no image, or a bad parameter",
        408: "the body did not arrive within the server's body timeout",
        413: "the body is over the size limit, or the image has too many pixels",
        415: "the body is not an image",
        422: "the image holds no ink or no digit (/v1/predict, /v1/explain), or took longer than the server's "
        "deadline to prepare",
        503: "the model is loading or the queue is full: retry after Retry-After seconds",
    }.items()
}

IMAGE_BODY: dict[str, Any] = {
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


# what /v1/predict, /v1/explain and /v1/read share in the schema, besides IMAGE_BODY and their tag: the errors
IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {code: ERRORS[code] for code in (400, 408, 413, 415, 422, 503)}

# /metrics: Prometheus's text format, not JSON
METRICS_OUT: dict[int | str, dict[str, Any]] = {
    200: {"description": "the Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
}

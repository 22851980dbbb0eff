"""mnistlab.serve.schemas: the answers' shapes, and the errors and body each image operation documents."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

import pydantic  # noqa: E402

from mnistlab.infer.classifier import Prediction  # noqa: E402
from mnistlab.infer.output import result_row  # noqa: E402
from mnistlab.serve.schemas import ERRORS, IMAGE_BODY, IMAGE_ERRORS, ErrorOut, ExplanationOut, PredictionOut  # noqa: E402


def row() -> dict:
    probs = [0.0] * 10
    probs[7] = 1.0
    r = result_row("", Prediction(7, probs, [(7, 1.0)], label="7", candidate="all ink"))
    r.pop("file")
    return r | {"seen": "data:image/png;base64,"}


def test_a_prediction_row_is_a_valid_answer_and_an_explanation_adds_its_map():
    out = PredictionOut(**row())
    assert out.digit == 7 and out.top_k[0].label == "7" and out.candidate == "all ink"
    ex = ExplanationOut(**row(), heatmap=[[0.0] * 28] * 28)
    assert ex.receptive_field is None and len(ex.heatmap) == 28
    with pytest.raises(pydantic.ValidationError):
        PredictionOut(**(row() | {"digit": "seven"}))


def test_every_image_operation_documents_its_errors_and_body():
    assert set(ERRORS) == {400, 408, 413, 415, 422, 503}
    assert all(e["model"] is ErrorOut and e["description"] for e in ERRORS.values())
    assert set(IMAGE_ERRORS) == set(ERRORS)
    content = IMAGE_BODY["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/*"} <= set(content)

"""mnistlab.serve.routes: the receptive-field box, the answer of a prediction and the routes the router holds."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from conftest import draw_seven  # noqa: E402
from PIL import Image  # noqa: E402

from mnistlab.explain.analysis import unit_geometry  # noqa: E402
from mnistlab.images.preprocess import candidates  # noqa: E402
from mnistlab.serve.routes import explanation, png_data_url, prediction, rf_box, router, static_dir  # noqa: E402
from mnistlab.serve.uploads import ApiError  # noqa: E402


def test_rf_box_is_the_square_a_unit_sees(bundled):
    layers = unit_geometry(bundled.model)
    conv1 = next(d for d in layers if d["layer"] == "conv1")
    box = rf_box(layers, "conv1", 2, 3)
    assert box["size"] == conv1["receptive_field"] == 3
    assert (box["top"], box["left"]) == (conv1["offset"] + 2 * conv1["jump"], conv1["offset"] + 3 * conv1["jump"])
    with pytest.raises(ApiError, match="layer must be one of") as e:
        rf_box(layers, "fc9", 0, 0)
    assert e.value.status == 400
    with pytest.raises(ApiError, match="row and col go from 0 to"):
        rf_box(layers, "conv1", conv1["size"], 0)


def test_png_data_url_round_trips_the_image():
    seen = np.zeros((28, 28), np.float32)
    seen[3, 4] = 1.0
    url = png_data_url(seen)
    assert url.startswith("data:image/png;base64,")
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert img.shape == (28, 28) and img[3, 4] == 255 and img.sum() == 255


def test_prediction_and_explanation_of_a_seven(bundled):
    found = candidates(draw_seven())
    probs = bundled.probabilities(np.stack([c.seen for c in found]))
    out, seen = prediction(bundled, probs, found, top_k=2)
    assert out["digit"] == 7 and len(out["top_k"]) == 2 and "file" not in out and out["seen"].startswith("data:")
    heat = explanation(bundled, seen)
    assert heat.shape == (28, 28) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)


def test_the_router_answers_head_wherever_it_answers_get_and_serves_the_page():
    methods: dict[str, set] = {}
    for r in router.routes:
        methods.setdefault(r.path, set()).update(r.methods)
    assert {"GET", "HEAD"} <= methods["/healthz"] and {"GET", "HEAD"} <= methods["/"]
    assert methods["/v1/predict"] == methods["/v1/explain"] == methods["/v1/read"] == {"POST"}
    assert static_dir().joinpath("index.html").is_file()


def test_v1_model_shows_the_model_file_name_not_where_it_lies_on_the_server():
    """Issue 28 (minor): /v1/model showed the model's absolute path on the server; a folder dataset's too."""
    from fastapi.testclient import TestClient

    import mnistlab
    from mnistlab.serve import create_app
    from mnistlab.serve.routes import shown

    clf = mnistlab.load(device="cpu")
    clf.source = "/srv/secret/place/runs/r1/model.safetensors"
    clf.card = clf.card | {"dataset": "folder:/home/alice/digits", "recipe": {"name": "r", "dataset": "folder:/x/d"}}
    with TestClient(create_app(clf)) as c:
        info = c.get("/v1/model").json()
    assert info["source"] == "model.safetensors" and info["dataset"] == "folder:digits"
    assert info["recipe"]["dataset"] == "folder:d" and "/srv" not in str(info) and "alice" not in str(info)
    assert (shown("bundled"), shown("mnist"), shown("runs/r1")) == ("bundled", "mnist", "r1")

"""POST /v1/read: a picture's digits found and read whole (number, boxes, readings), its refusals as one line of
JSON, and its readers built once per worker process."""

from __future__ import annotations

import base64

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

from conftest import encoded, png_claiming  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from photos import written_number  # noqa: E402
from test_app import check_error  # noqa: E402
from test_metrics import scrape, value  # noqa: E402

from mnistlab.data.download import load_tensors  # noqa: E402
from mnistlab.serve import create_app  # noqa: E402

PNG = {"content-type": "image/png"}
NUMBER = "305"  # three MNIST training digits the bundled finder and classifier read right (checked by the test)


@pytest.fixture(scope="module")
def number(data_dir) -> tuple[bytes, list]:
    """(a PNG of NUMBER written with MNIST training digits, 80 px tall, on white 400x200 paper, their boxes)."""
    images, labels = load_tensors(True, data_dir, limit=300)  # MNIST's training split only
    paper, boxes = written_number(images.numpy(), labels.numpy(), NUMBER)
    return encoded(paper), boxes


@pytest.fixture(scope="module")
def client(bundled):
    with TestClient(create_app(bundled, max_body=2**20, prepare_workers=2)) as c:
        yield c


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


def test_a_written_number_is_read_whole_with_a_box_on_each_digit(client, number, bundled):
    png, boxes = number
    raw = client.post("/v1/read", content=png, headers=PNG)
    form = client.post("/v1/read", files={"file": ("number.png", png, "image/png")})
    as_json = client.post("/v1/read", json={"image": "data:image/png;base64," + base64.b64encode(png).decode()})
    for r in (raw, form, as_json):
        assert r.status_code == 200, r.text
        assert r.json() == raw.json()
    out = raw.json()
    assert out["number"] == NUMBER and (out["width"], out["height"]) == (400, 200)
    assert len(out["digits"]) == len(NUMBER)
    for d, box, c in zip(out["digits"], boxes, NUMBER):
        assert (d["digit"], d["label"]) == (int(c), c)
        assert len(d["probabilities"]) == 10 and abs(sum(d["probabilities"]) - 1) < 1e-4
        assert d["probability"] == max(d["probabilities"]) == d["probabilities"][d["digit"]]
        assert d["is_digit"] is (d["digit_score"] >= bundled.threshold) and d["is_digit"]
        assert 0 < d["found"] <= 1 and d["seen"].startswith("data:image/png;base64,")
        assert iou(d["box"], box) > 0.5, (d["box"], box)  # on the digit as pasted


def test_a_picture_without_digits_reads_as_no_number(client):
    r = client.post("/v1/read", content=encoded(np.full((200, 300), 255, np.uint8)), headers=PNG)
    assert r.status_code == 200, r.text
    assert r.json() == {"number": "", "width": 300, "height": 200, "digits": []}


def test_what_cannot_be_read_is_refused_in_one_line_and_counted(client, number):
    pool = client.app.state.mnistlab.pool
    started = pool.started
    post = client.post
    check_error(post("/v1/read", content=b"", headers=PNG), 400)
    check_error(post("/v1/read", json={"picture": "x"}), 400)
    assert "not an image" in check_error(
        post("/v1/read", content=b"plain text", headers={"content-type": "text/plain"}), 415
    )
    check_error(post("/v1/read", content=number[0][: len(number[0]) // 2], headers=PNG), 415)  # truncated
    assert "pixels" in check_error(post("/v1/read", content=png_claiming(5000, 5000), headers=PNG), 413)
    assert "limit" in check_error(post("/v1/read", content=b"\0" * (2**20 + 1), headers=PNG), 413)
    assert post("/v1/read", content=number[0], headers=PNG).json()["number"] == NUMBER  # and reads on
    assert pool.started == started  # a refused picture left its worker (and its reader) in place
    m = scrape(client)
    assert value(m, "mnistlab_images_refused_total", status="415", reason="not_an_image") >= 2
    assert value(m, "mnistlab_requests_total", route="/v1/read", method="POST", status="413") == 2


def test_the_schema_describes_the_reading_and_its_errors(client):
    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/v1/read"]["post"]
    assert {"200", "400", "408", "413", "415", "422", "503"} <= set(op["responses"])
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ReadingOut")
    assert "multipart/form-data" in op["requestBody"]["content"]
    digit = schema["components"]["schemas"]["FoundDigitOut"]["properties"]
    assert {"box", "digit", "label", "probability", "digit_score", "found"} <= set(digit)

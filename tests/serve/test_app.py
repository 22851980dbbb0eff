"""`mnistlab serve`'s API with FastAPI's test client: every status code, the JSON shapes, batching that gives the
same answers as one request at a time, and the command itself on a free localhost port."""

from __future__ import annotations

import base64
import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

from conftest import REPO, SEED_RF, encoded, one_line_error, png_claiming, run_main  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import mnistlab  # noqa: E402
from mnistlab.serve import create_app  # noqa: E402

SEVEN = (REPO / "examples" / "digits" / "seven_pen.png").read_bytes()
# An EPS file that loops for ever in Ghostscript (issue 19): it must never reach a decoder that runs an external program
EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n{ 1 pop } loop\n"
BLANK = (REPO / "examples" / "digits" / "blank.png").read_bytes()
ERROR_CODES = (400, 413, 415, 422, 503)


@pytest.fixture(scope="module")
def classifier(bundled):
    return bundled


@pytest.fixture(scope="module")
def client(classifier):
    with TestClient(create_app(classifier, max_body=2**20)) as c:
        yield c


@pytest.fixture(scope="module")
def mnist_pngs(data_dir):
    """48 MNIST test digits as PNG files, with their labels."""
    images, labels = mnistlab.data.download.load_tensors(False, data_dir, limit=48)
    return [encoded(a) for a in images.numpy()], labels.tolist()


def check_error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    # issue 21: every error body carries the request's id beside the error, as its X-Request-ID header does
    assert set(body) == {"error", "request_id"} and isinstance(body["error"], str) and body["error"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    return body["error"]


def check_prediction(body: dict, top_k: int = 3) -> None:
    assert set(body) >= {"digit", "label", "probabilities", "top_k", "seen"}
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-4
    assert body["digit"] == int(np.argmax(body["probabilities"])) and body["label"] == str(body["digit"])
    assert len(body["top_k"]) == top_k and body["top_k"][0]["digit"] == body["digit"]
    assert [t["probability"] for t in body["top_k"]] == sorted((t["probability"] for t in body["top_k"]), reverse=True)
    head = "data:image/png;base64,"
    assert body["seen"].startswith(head)
    seen = Image.open(io.BytesIO(base64.b64decode(body["seen"][len(head) :])))
    assert seen.size == (28, 28) and seen.mode == "L"


def test_predict_raw_multipart_and_json_agree_with_the_python_api(client, classifier):
    expected = classifier.predict(SEVEN)[0]
    raw = client.post("/v1/predict", content=SEVEN, headers={"content-type": "image/png"})
    form = client.post("/v1/predict?top_k=5", files={"file": ("seven.png", SEVEN, "image/png")})
    as_json = client.post("/v1/predict", json={"image": "data:image/png;base64," + base64.b64encode(SEVEN).decode()})
    for r, k in ((raw, 3), (form, 5), (as_json, 3)):
        assert r.status_code == 200, r.text
        check_prediction(r.json(), k)
        assert r.json()["digit"] == expected.digit == 7
        assert np.allclose(r.json()["probabilities"], expected.probabilities, atol=1e-5)
    seen = Image.open(io.BytesIO(base64.b64decode(raw.json()["seen"].split(",", 1)[1])))
    assert np.abs(np.asarray(seen) / 255 - expected.seen).max() <= 0.5 / 255 + 1e-6  # the same 28x28 image


def test_health_model_page_and_schema(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    m = client.get("/v1/model").json()
    assert m["params"] == 593_200 and m["source"] == "bundled" and m["name"] == "robust"
    assert m["test_accuracy"] == mnistlab.load().card["test_acc"] and m["recipe"]["name"] == "robust"
    walk = {d["layer"]: (d["receptive_field"], d["size"], d["jump"]) for d in m["layers"]}
    assert walk == {layer: (rf, n, j) for layer, rf, n, j in SEED_RF}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for hook in ("pad", "clear", "prediction", "probabilities", "seen"):
        assert f'data-testid="{hook}"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN: works offline
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and "https://" not in r.text
    assert client.get("/docs").status_code == 404  # its page would load scripts from a CDN
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz"} <= set(paths)
    responses = paths["/v1/predict"]["post"]["responses"]
    assert set(map(str, ERROR_CODES)) <= set(responses)


def test_every_error_is_one_line_of_json_and_the_server_keeps_serving(client):
    post = client.post
    png_type = {"content-type": "image/png"}
    check_error(post("/v1/predict", content=b"", headers=png_type), 400)
    check_error(post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"}), 400)
    check_error(post("/v1/predict", json={"picture": "x"}), 400)
    check_error(post("/v1/predict", json={"image": "not base64!"}), 400)
    multipart = {"content-type": "multipart/form-data; boundary=xyz"}
    broken = b"--xyz\r\nContent-Disposition: nonsense\r\n\r\nab"
    check_error(post("/v1/predict", content=broken, headers=multipart), 400)
    check_error(post("/v1/predict", files={"other": ("a.png", SEVEN, "image/png")}), 400)
    check_error(post("/v1/predict?top_k=11", content=SEVEN, headers=png_type), 400)
    check_error(post("/v1/explain?layer=fc1", content=SEVEN, headers=png_type), 400)
    check_error(post("/v1/explain?layer=conv3&row=10", content=SEVEN, headers=png_type), 400)
    assert "limit" in check_error(post("/v1/predict", content=b"\0" * (2**20 + 1), headers=png_type), 413)
    assert "pixels" in check_error(post("/v1/predict", content=png_claiming(5000, 5000), headers=png_type), 413)
    assert "pixels" in check_error(post("/v1/predict", content=png_claiming(60000, 60000), headers=png_type), 413)
    check_error(post("/v1/predict", content=b"plain text, not an image", headers={"content-type": "text/plain"}), 415)
    check_error(post("/v1/predict", content=SEVEN[: len(SEVEN) // 2], headers=png_type), 415)  # truncated
    assert "PNG, JPEG" in check_error(post("/v1/predict", content=EPS_LOOP, headers=png_type), 415)  # never gs
    deep = b"[" * 100_000 + b"]" * 100_000  # nested deeper than the JSON parser's stack
    assert "too deep" in check_error(
        post("/v1/predict", content=deep, headers={"content-type": "application/json"}), 400
    )
    assert "no ink" in check_error(post("/v1/predict", content=BLANK, headers=png_type), 422)
    check_error(client.get("/nowhere"), 404)
    check_error(client.get("/v1/predict"), 405)
    r = post("/v1/predict", content=SEVEN, headers=png_type)
    assert r.status_code == 200 and r.json()["digit"] == 7


def test_explain_heatmap_and_receptive_field(client):
    r = client.post("/v1/explain?layer=conv4&row=3&col=5", content=SEVEN, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    check_prediction(body)
    heat = np.array(body["heatmap"])
    assert heat.shape == (28, 28) and heat.min() >= 0 and heat.max() == 1
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["seen"].split(",", 1)[1])))) / 255
    assert heat[seen > 0.1].mean() > heat[seen == 0].mean()  # the gradient lies mostly on and around the ink
    assert body["receptive_field"] == {"layer": "conv4", "row": 3, "col": 5, "top": 6, "left": 10, "size": 14}
    assert client.post("/v1/explain", content=SEVEN).json()["receptive_field"] is None


def test_batching_gives_the_answers_of_one_request_at_a_time(classifier, mnist_pngs):
    images, labels = mnist_pngs
    with TestClient(create_app(classifier, max_batch=1)) as one:
        alone = [one.post("/v1/predict", content=d).json() for d in images]
    app = create_app(classifier, max_batch=16, max_wait_ms=100)
    with TestClient(app) as c, ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda d: c.post("/v1/predict", content=d), images))
        stats = app.state.mnistlab.batcher.stats
    assert all(r.status_code == 200 for r in together)
    assert [r.json()["digit"] for r in together] == [a["digit"] for a in alone]
    for r, a in zip(together, alone):
        assert np.allclose(r.json()["probabilities"], a["probabilities"], atol=1e-5)
        assert r.json()["seen"] == a["seen"]
    assert sum(a["digit"] == y for a, y in zip(alone, labels)) >= 46  # the bundled model reads MNIST
    # how much batching happens depends on timing: benchmarks/serve_load.py measures it (mean batch per pass)
    assert stats.items == len(images) and stats.largest <= 16


def test_503_while_loading_and_when_full(classifier):
    loaded = threading.Event()

    def slow_load():
        loaded.wait(30)
        return classifier

    with TestClient(create_app(slow_load)) as c:
        for r in (c.get("/healthz"), c.post("/v1/predict", content=SEVEN), c.get("/v1/model")):
            assert "loading" in check_error(r, 503) and r.headers["retry-after"] == "1"
        loaded.set()
        for _ in range(300):
            if c.get("/healthz").status_code == 200:
                break
            time.sleep(0.01)
        assert c.post("/v1/predict", content=SEVEN).json()["digit"] == 7

    release = threading.Event()
    gated = mnistlab.load(device="cpu")
    real = gated.probabilities
    gated.probabilities = lambda seen: (release.wait(30), real(seen))[1]
    app = create_app(gated, max_queue=1)
    with TestClient(app) as c, ThreadPoolExecutor(1) as pool:
        first = pool.submit(c.post, "/v1/predict", content=SEVEN)
        for _ in range(3000):
            if app.state.mnistlab.in_flight == 1:
                break
            time.sleep(0.01)
        r = c.post("/v1/predict", content=SEVEN)
        assert "busy" in check_error(r, 503) and r.headers["retry-after"] == "1"
        release.set()
        assert first.result(30).json()["digit"] == 7
        assert c.post("/v1/predict", content=SEVEN).status_code == 200


def test_serve_command_answers_on_a_free_port(served):
    import httpx

    assert served.startswith("http://127.0.0.1:")  # localhost by default
    assert httpx.get(served + "healthz").json() == {"status": "ok"}
    r = httpx.post(served + "v1/predict", content=SEVEN, headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["digit"] == 7


def test_serve_without_the_extra_says_how_to_install_it(env, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed: import fails
    assert 'pip install "mnistlab[serve]"' in one_line_error(run_main("serve", env=env))


def test_serve_on_a_port_in_use_is_one_line(env):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        r = run_main("serve", "--port", s.getsockname()[1], env=env)
    assert "in use" in one_line_error(r)


def test_answers_are_not_held_back_by_nagle():
    """Every connection the server accepts sends at once (TCP_NODELAY): asyncio sets it only on sockets made with
    proto IPPROTO_TCP, and without it each answer waited ~40 ms for the client's delayed ACK."""
    import socket

    from mnistlab.serve.server import listen, url

    with listen("127.0.0.1", 0) as sock, socket.create_connection(sock.getsockname()[:2]) as client:
        conn, _ = sock.accept()
        with conn:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert conn.getpeername() == client.getsockname()  # the connection accepted is the client's
        assert url(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}/"


def test_batcher_batches_hands_on_errors_and_goes_on():
    import asyncio

    from mnistlab.serve import Batcher, QueueFull

    calls = []

    def run(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("a bad batch")
        return [x * 2 for x in items]

    async def main():
        b = Batcher(run, max_batch=4, max_wait_ms=50, max_queue=8)
        b.start()
        try:
            assert await asyncio.gather(*(b.submit(i) for i in range(6))) == [0, 2, 4, 6, 8, 10]
            assert [len(c) for c in calls] == [4, 2]  # full batches first, the rest after max_wait_ms
            results = await asyncio.gather(b.submit("bad"), b.submit(1), return_exceptions=True)
            assert all(isinstance(r, ValueError) for r in results)  # the whole batch failed, each caller is told
            assert await b.submit(21) == 42  # and the worker goes on
            with pytest.raises(QueueFull):
                await asyncio.gather(*(b.submit(i) for i in range(9)))
        finally:
            await b.stop()
        assert b.stats.largest == 4

    asyncio.run(main())


def test_a_batch_that_holds_every_request_on_its_way_runs_at_once():
    """With `expected`, the batcher does not wait out max_wait_ms (here a minute) when nothing else is coming: a lone
    request is answered at once, and three that arrive together go in one batch."""
    import asyncio

    from mnistlab.serve import Batcher

    calls, coming = [], {"n": 1}

    def run(items):
        calls.append(list(items))
        return [x * 2 for x in items]

    async def main():
        b = Batcher(run, max_batch=8, max_wait_ms=60_000, max_queue=8, expected=lambda: coming["n"])
        b.start()
        try:
            assert await asyncio.wait_for(b.submit(1), 10) == 2
            coming["n"] = 3
            assert await asyncio.wait_for(asyncio.gather(*(b.submit(i) for i in range(3))), 10) == [0, 2, 4]
        finally:
            await b.stop()
        assert [len(c) for c in calls] == [1, 3]

    asyncio.run(main())

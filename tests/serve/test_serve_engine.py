"""`mnistlab serve --engine onnx`: batches on onnxruntime, the same answers as torch, torch only for explanations."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

from conftest import REPO, one_line_error, run_main, serving  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import mnistlab  # noqa: E402
from mnistlab.serve import create_app  # noqa: E402

SEVEN = (REPO / "examples" / "digits" / "seven_pen.png").read_bytes()
PNG = {"content-type": "image/png"}

# A server on the onnx engine in a fresh process: predictions and /v1/model import no torch, an explanation does
LAZY_TORCH = f"""
import sys
from fastapi.testclient import TestClient
import mnistlab
from mnistlab.serve import create_app
seven = open({str(REPO / "examples" / "digits" / "seven_pen.png")!r}, "rb").read()
with TestClient(create_app(mnistlab.load(engine="onnx"))) as c:
    assert c.get("/readyz").status_code == 200
    r = c.post("/v1/predict", content=seven, headers={{"content-type": "image/png"}})
    assert r.status_code == 200 and r.json()["digit"] == 7, r.text
    model = c.get("/v1/model").json()
    assert model["engine"] == "onnx" and model["params"] > 0 and model["layers"][0]["layer"] == "conv1", model
    assert "torch" not in sys.modules, "a prediction or /v1/model imported torch"
    r = c.post("/v1/explain", content=seven, headers={{"content-type": "image/png"}})
    assert r.status_code == 200 and len(r.json()["heatmap"]) == 28, r.text
    assert "torch" in sys.modules
print("ok")
"""


@pytest.fixture(scope="module")
def clients(bundled):
    with TestClient(create_app(mnistlab.load(engine="onnx"))) as onnx, TestClient(create_app(bundled)) as torch:
        yield onnx, torch


def test_onnx_and_torch_servers_give_the_same_answers(clients):
    onnx, torch = clients
    got, want = (c.post("/v1/predict?top_k=5", content=SEVEN, headers=PNG).json() for c in clients)
    assert got["digit"] == want["digit"] == 7 and got["is_digit"] == want["is_digit"]
    assert [t["digit"] for t in got["top_k"]] == [t["digit"] for t in want["top_k"]]
    assert abs(got["digit_score"] - want["digit_score"]) <= 1e-5 and got["seen"] == want["seen"]
    heat_onnx, heat_torch = (c.post("/v1/explain", content=SEVEN, headers=PNG).json() for c in clients)
    assert heat_onnx["digit"] == 7 and np.abs(np.array(heat_onnx["heatmap"]) - heat_torch["heatmap"]).max() <= 1e-3
    model_onnx, model_torch = onnx.get("/v1/model").json(), torch.get("/v1/model").json()
    assert (model_onnx["engine"], model_torch["engine"]) == ("onnx", "torch")
    assert model_onnx["params"] == model_torch["params"] and model_onnx["layers"] == model_torch["layers"]


def test_an_onnx_server_imports_torch_only_for_an_explanation():
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_ENGINE"}
    r = subprocess.run([sys.executable, "-c", LAZY_TORCH], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_serve_onnx_engine_refuses_weights_it_has_no_onnx_copy_of(tmp_path):
    env = dict(os.environ)
    r = run_main("serve", "--port", "0", "--engine", "onnx", "--model", tmp_path, env=env)
    assert "mnistlab export --onnx" in one_line_error(r)
    assert "--engine onnx" in one_line_error(run_main("serve", "--model", tmp_path / "m.onnx", env=env))


def test_serve_runs_torch_unless_told_and_says_which_engine(tmp_path):
    import httpx

    from mnistlab.cli import serve

    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_ENGINE"}
    assert serve.ENGINE == "torch" and "else torch)" in " ".join(run_main("serve", "--help", env=env).stdout.split())
    with serving(env, "--engine", "onnx") as url:
        info = httpx.get(url + "v1/model", timeout=600).json()
    assert info["engine"] == "onnx" and info["source"] == "bundled"

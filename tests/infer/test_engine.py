"""The reading path without torch: the bundled model's ONNX copy, `--engine onnx|torch|auto`, and no torch imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_cli, run_main

import mnistlab
from mnistlab.errors import UserError
from mnistlab.infer import engine
from mnistlab.infer.onnx_net import OnnxNet
from mnistlab.store.bundled import bundled_onnx, bundled_weights

SEVEN = REPO / "examples" / "digits" / "seven_pen.png"

# `mnistlab predict` through the CLI's own main in a fresh process, then proof that torch was never imported
NO_TORCH = """
import sys
from mnistlab.cli import main
status = main(sys.argv[1:])
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
sys.exit(status)
"""


def _env(**extra) -> dict:
    """This process's environment without a chosen engine (the default, auto, is under test), plus `extra`."""
    return {k: v for k, v in os.environ.items() if k != engine.ENV} | extra


@pytest.fixture(scope="module")
def bundled_on_onnx():
    return mnistlab.load(engine="onnx")


def test_not_a_digit_is_the_same_verdict_on_both_engines(bundled, bundled_on_onnx):
    rng = np.random.default_rng(3)
    noise = [rng.random((28, 28), dtype=np.float32) for _ in range(8)]
    images = [*sorted((REPO / "examples" / "digits").glob("*.png")), *noise]
    for g, w in zip(bundled_on_onnx.predict_each(images), bundled.predict_each(images)):
        if isinstance(w, UserError):
            assert isinstance(g, UserError) and str(g) == str(w)
            continue
        assert (g.digit, g.is_digit, g.candidate) == (w.digit, w.is_digit, w.candidate)
        assert abs(g.digit_score - w.digit_score) <= 1e-5
    assert not all(p.is_digit for p in bundled.predict(noise))  # the noise does reach the "not a digit" side


def test_predict_on_onnx_never_imports_torch(tmp_path):
    out = tmp_path / "out.csv"
    args = ["predict", SEVEN, "--json", "--output", out]
    cmd = [sys.executable, "-c", NO_TORCH, *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["digit"] == 7 and out.is_file()
    imports = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import mnistlab.images.decode, mnistlab.images.preprocess, mnistlab.infer.classifier",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert imports.returncode == 0 and "mnistlab.infer.classifier" in imports.stderr
    assert not [line for line in imports.stderr.splitlines() if line.split("|")[-1].strip().startswith("torch")]


def test_the_torch_engine_gives_the_same_digit():
    onnx = run_main("predict", SEVEN, "--json", env=_env())
    forced = run_main("predict", SEVEN, "--json", "--engine", "torch", env=_env())
    by_env = run_cli("predict", SEVEN, "--json", env=_env(MNISTLAB_ENGINE="torch"))
    assert onnx.returncode == forced.returncode == by_env.returncode == 0, (forced.stderr, by_env.stderr)
    rows = [json.loads(r.stdout) for r in (onnx, forced, by_env)]
    assert {row["digit"] for row in rows} == {7} and len({row["is_digit"] for row in rows}) == 1
    assert max(abs(row["digit_score"] - rows[0]["digit_score"]) for row in rows) <= 1e-5


def test_auto_takes_onnx_where_it_can_and_torch_elsewhere(monkeypatch, tmp_path):
    assert engine.choose(None, "cpu", "auto") == ("onnx", bundled_onnx())
    assert engine.choose(tmp_path / "m.onnx", "cpu", "auto") == ("onnx", tmp_path / "m.onnx")
    assert engine.choose(None, "cuda", "auto") == ("torch", None)
    assert engine.choose(tmp_path / "run", "cpu", "auto") == ("torch", tmp_path / "run")
    assert engine.choose(None, "cpu", None) == ("torch", None)  # the Python API's default: the nn.Module
    monkeypatch.setattr(engine, "has_onnxruntime", lambda: False)
    assert engine.choose(None, "cpu", "auto") == ("torch", None)
    assert engine.choose(None, "cpu", "onnx") == ("onnx", bundled_onnx())  # forced: OnnxNet says what to install


def test_an_engine_that_cannot_read_the_model_is_one_line(tmp_path):
    r = run_main("predict", SEVEN, "--engine", "onnx", "--model", bundled_weights(), env=_env())
    assert r.returncode == 2 and "mnistlab export --onnx" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "m.onnx").write_bytes(b"")
    r = run_main("predict", SEVEN, "--engine", "torch", "--model", tmp_path / "m.onnx", env=_env())
    assert r.returncode == 2 and "is an ONNX file" in r.stderr
    r = run_main("predict", SEVEN, env=_env(MNISTLAB_ENGINE="tensorrt"))
    assert r.returncode == 2 and "$MNISTLAB_ENGINE must be one of auto, onnx, torch" in r.stderr
    with pytest.raises(UserError, match="runs on the CPU"):
        mnistlab.load(engine="onnx", device="cuda")


def test_the_classifier_says_which_engine_reads(bundled, bundled_on_onnx):
    assert (bundled.engine, bundled_on_onnx.engine) == ("torch", "onnx")
    assert isinstance(bundled_on_onnx.model, OnnxNet) and bundled_on_onnx.source == bundled.source == "bundled"
    assert "engine='onnx'" in repr(bundled_on_onnx)
    assert isinstance(bundled_on_onnx.probabilities(np.zeros((2, 28, 28), np.float32)), np.ndarray)
    with pytest.raises(TypeError, match="engine='torch'"):
        bundled_on_onnx.inputs(np.zeros((1, 28, 28), np.float32))


def test_predict_help_says_which_engine_is_the_default():
    text = " ".join(run_main("predict", "--help", env=_env()).stdout.split())
    assert "--engine {auto,onnx,torch}" in text and "(default: $MNISTLAB_ENGINE, else auto)" in text

"""`mnistlab export`: ONNX and torch.export files from the bundled model or --model, read back by predict."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
from conftest import REPO, one_line_error, run_cli, run_main

from mnistlab.weights import bundled_weights

SEVEN = REPO / "examples" / "digits" / "seven_pen.png"


def test_export_onnx_from_weights_then_predict_reads_it_like_torch(tmp_path, env):
    out = tmp_path / "model.onnx"
    r = run_main("export", "--onnx", out, "--model", bundled_weights(), env=env)
    assert r.returncode == 0 and f"wrote {out}" in r.stderr, r.stderr
    assert ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_inputs()[0].name == "image"
    from_onnx = run_cli("predict", SEVEN, "--json", "--model", out, env=env)  # a process: the real entry point
    from_torch = run_main("predict", SEVEN, "--json", env=env)
    assert from_onnx.returncode == from_torch.returncode == 0, from_onnx.stderr
    got, want = json.loads(from_onnx.stdout), json.loads(from_torch.stdout)
    assert got["digit"] == want["digit"] == 7 and got["is_digit"] == want["is_digit"]
    assert abs(got["digit_score"] - want["digit_score"]) <= 1e-4


def test_export_torch_program_of_the_bundled_model(tmp_path, env):
    import torch

    r = run_main("export", "--torch-export", tmp_path / "m.pt2", env=env)
    assert r.returncode == 0, r.stderr
    assert torch.export.load(str(tmp_path / "m.pt2")).module()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to write"),
        (["--onnx", "model.bin"], "--onnx must name a .onnx file"),
        (["--onnx", "m.onnx", "--model", "missing.safetensors"], "missing.safetensors does not exist"),
        (["--onnx", "m.onnx", "--model", "other.onnx"], "not an ONNX file"),
    ],
)
def test_export_mistakes_are_one_line(args, message, tmp_path, env):
    r = run_main("export", *args, env=env, cwd=tmp_path)
    assert message in one_line_error(r)
    assert not (tmp_path / "m.onnx").exists()


def test_predict_with_a_broken_onnx_file_is_one_line(tmp_path, env):
    (tmp_path / "broken.onnx").write_bytes(b"\x00not protobuf")
    assert "is not a readable ONNX model" in one_line_error(
        run_main("predict", SEVEN, "--model", tmp_path / "broken.onnx", env=env)
    )
    assert "does not exist" in one_line_error(run_main("predict", SEVEN, "--model", tmp_path / "gone.onnx", env=env))


def test_serve_refuses_an_onnx_model_in_one_line(tmp_path, env):
    r = run_main("serve", "--port", "0", "--model", tmp_path / "m.onnx", env=env)
    assert "needs torch weights" in one_line_error(r)

"""`mnistlab export`: ONNX and torch.export files from the bundled model or --model, read back by predict."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
from conftest import REPO, one_line_error, run_cli, run_main

from mnistlab.store.weights import bundled_weights

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


def test_a_re_export_that_fails_midway_keeps_the_good_file_and_leaves_no_temporary_file(tmp_path, env):
    """Issue 28: a failed write (a full disk: here a file-size limit, so the write stops after 1 MB) truncated the
    good .onnx. Now the old file stays byte for byte, and nothing else is left in its folder."""
    from conftest import file_size_limit

    good = tmp_path / "model.onnx"
    assert run_main("export", "--onnx", good, env=env).returncode == 0
    before = good.read_bytes()
    for flag, name in (("--onnx", "model.onnx"), ("--torch-export", "model.pt2")):
        with file_size_limit(1_000_000):
            line = one_line_error(run_main("export", flag, tmp_path / name, env=env))
        assert "cannot write" in line and "File too large" in line, line
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_onnx_inside_the_web_folder_is_refused_before_anything_is_written(tmp_path, env):
    """Issue 28: `--onnx D/model.onnx --web D` wrote the model, then refused D as "not empty"."""
    d = tmp_path / "D"
    d.mkdir()
    line = one_line_error(run_main("export", "--onnx", d / "model.onnx", "--web", d, env=env))
    assert "inside --web" in line and list(d.iterdir()) == []
    line = one_line_error(run_main("export", "--onnx", tmp_path / "new" / "m.onnx", "--web", tmp_path / "new", env=env))
    assert "does not exist" in line and not (tmp_path / "new").exists()
    same = ["--onnx", tmp_path / "m.onnx", "--torch-export", tmp_path / "m.onnx"]
    assert "the same file" in one_line_error(run_main("export", *same, env=env))
    assert list(tmp_path.iterdir()) == [d]


def test_what_export_prints_has_its_control_characters_escaped(tmp_path, env):
    name = tmp_path / "a\nb\x1b[31mRED.onnx"
    r = run_main("export", "--onnx", name, env=env)
    assert r.returncode == 0 and name.is_file(), r.stderr
    assert r.stderr.count("\n") == 1 and "\x1b" not in r.stderr and "a\\nb\\x1b[31mRED.onnx" in r.stderr, r.stderr


def test_a_disk_too_full_for_all_destinations_is_told_before_anything_is_written(tmp_path, env, monkeypatch):
    """Issue 28: onto a full disk, `--onnx` left a truncated file and `--web` a 0-byte model.onnx. Now the bytes
    of every destination are made first, and a disk that cannot hold them all is refused before one is written."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**7, 10**7))  # 10 MB free
    line = one_line_error(run_main("export", "--onnx", tmp_path / "m.onnx", "--web", tmp_path / "site", env=env))
    assert "not enough space" in line and list(tmp_path.iterdir()) == []  # the site needs about 19 MB

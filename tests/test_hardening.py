"""Hostile input against run folders, checkpoints, weights, options and output: each is a clean run or one line
on stderr with exit status 2, and nothing a previous run wrote changes (issue 8's table, row by row)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, examples, one_line_error, run_cli, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnistlab.cli import main
from mnistlab.errors import UserError
from mnistlab.model import Net
from mnistlab.store import checkpoints

TRAIN = ["train", "--device", "cpu", "--quiet", "--no-plots"]
TINY = ["--epochs", "2", "--limit-train", "256", "--limit-test", "128", "--batch-size", "64"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir, mirror) -> Path:
    """A complete 2-epoch run folder (a few seconds of training), copied afresh by `fresh_run`."""
    run = tmp_path_factory.mktemp("finished") / "run"
    env = dict(os.environ, MNISTLAB_DATA=str(data_dir), MNISTLAB_MIRROR=str(mirror))
    r = run_cli(*TRAIN, *TINY, "--out", run, env=env)
    assert r.returncode == 0, r.stderr
    return run


def fresh_run(finished_run: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(finished_run, dest)
    return dest


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def data(data_dir, mirror) -> list[str]:
    """The data options for in-process CLI calls."""
    return ["--data-dir", str(data_dir), "--mirror", str(mirror)]


def refused(capsys, *args) -> str:
    """Run the CLI in this process and return its one error line (exit status 2 asserted)."""
    status, err = in_process(capsys, *args)
    assert status == 2, err
    return err.strip()


def in_process(capsys, *args) -> tuple[int, str]:
    """Run the CLI in this process (fast enough for property tests); return (status, stderr). A traceback fails."""
    status = main([str(a) for a in args])
    err = capsys.readouterr().err
    if status != 0:
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and lines[0].startswith("mnistlab: error: "), (status, err)
    return status, err


# --------------------------------------------------------------------------------------------------------------
# Row 2: a full disk while a checkpoint is written


def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, env):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (run the suite as root, as CI does)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a 10 MB tmpfs here: {r.stderr.strip()}")
    try:
        run = mnt / "run"  # a checkpoint is about 7 MB: the first fits, a second beside it does not
        msg = one_line_error(run_cli(*TRAIN, *TINY, "--out", run, env=env))
        assert "No space left" in msg and "MB needed in" in msg and str(run) in msg, msg
        _, meta = checkpoints.read_checkpoint(run / checkpoints.CHECKPOINT)
        assert meta["epoch"] == 1 and [
            json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()
        ] == [1]
        assert not list(run.glob("*.tmp"))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)  # lazy: never leave the mount behind


# --------------------------------------------------------------------------------------------------------------
# Rows 3, 4, 7, 13: options, concurrent runs, failed starts


def test_resume_with_options_it_cannot_honour_changes_nothing(tmp_path, finished_run, capsys):
    run = fresh_run(finished_run, tmp_path / "A")
    before = snapshot(run)
    args = ["--out", tmp_path / "B", "--lr", "0.1", "--batch-size", "64", "--recipe", "seed"]
    msg = refused(capsys, "train", "--resume", run, *args)
    assert "--recipe, --batch-size, --lr cannot be changed when resuming" in msg, msg
    assert not (tmp_path / "B").exists() and snapshot(run) == before


def test_two_runs_started_on_one_folder_cannot_share_it(tmp_path, env):
    out = tmp_path / "shared"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mnistlab", *TRAIN, *TINY, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert len(loser.strip().splitlines()) == 1 and str(out) in loser and "Traceback" not in loser, loser
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "train.log").read_text().count("mnistlab recipe") == 1


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--lr", "1e308"], "lr must be a number in (0, 10], not 1e+308"),
        (["--seed", str(2**64)], "seed must be a whole number from 0 to 9,223,372,036,854,775,807"),
        (["--epochs", "100000"], "epochs must be a number in (0, 10000], not 100000"),
        (["--batch-size", "10000000"], "batch_size must be a whole number from 1 to 65,536"),
        (["--lr", "inf"], "--lr: must be a finite number > 0"),
    ],
)
def test_out_of_range_options_are_refused_before_anything_is_created(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    assert needle in refused(capsys, *TRAIN, *args, "--out", out)
    assert not out.exists()


def test_a_start_without_data_leaves_no_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_MIRROR"}
    env["MNISTLAB_DATA"] = str(tmp_path / "empty")
    one_line_error(run_cli(*TRAIN, "--out", tmp_path / "run", env=env, timeout=600))
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------------------------
# Rows 5 and 6: recipe.json and checkpoints damaged or edited by hand


def _set(key, value):
    def edit(text: str) -> str:
        data = json.loads(text)
        data[key] = value
        return json.dumps(data)

    return edit


RECIPE_DAMAGE = {
    "truncated": lambda t: t[: len(t) // 2],
    "empty": lambda t: "",
    "a list": lambda t: "[1, 2]",
    "not UTF-8": lambda t: b"\xff\xfe{".decode("latin-1"),
    "epochs a string": _set("epochs", "2"),
    "epochs zero": _set("epochs", 0),
    "a fraction of an epoch for StepLR": lambda t: _set("epochs", 2.5)(_set("scheduler", "step")(t)),
    "batch_size null": _set("batch_size", None),
    "unknown model": _set("model", "resnet"),
    "unknown setting": _set("learning_rate", 0.1),
    "OneCycle lengthened by hand": _set("epochs", 7),
    "another seed": _set("seed", 3),
}


@pytest.mark.parametrize("damage", RECIPE_DAMAGE)
def test_damaged_or_edited_recipe_json_is_one_line_for_evaluate_and_resume(
    tmp_path, finished_run, data, capsys, damage
):
    run = fresh_run(finished_run, tmp_path / "run")
    recipe = run / "recipe.json"
    text = RECIPE_DAMAGE[damage](recipe.read_text())
    recipe.write_bytes(text.encode("latin-1") if damage == "not UTF-8" else text.encode())
    before = snapshot(run)
    if damage not in ("OneCycle lengthened by hand", "another seed"):  # evaluate reads only what it needs
        assert "recipe.json" in refused(capsys, "evaluate", run, "--limit-test", "100", *data)
    msg = refused(capsys, "train", "--resume", run, "--quiet", "--no-plots", *data)
    assert "recipe.json" in msg, msg
    assert snapshot(run) == before


def _damage_checkpoint(run: Path, edit) -> None:
    path = run / checkpoints.CHECKPOINT
    tensors, meta = checkpoints.read_safetensors(path)
    edit(tensors, meta)
    checkpoints.atomic_save(tensors, path, meta)


CHECKPOINT_DAMAGE = {
    "no optimizer state": lambda t, m: m.pop("optimizer"),
    "no RNG state": lambda t, m: [t.pop(k) for k in list(t) if k.startswith("rng/")],
    "epoch a string": lambda t, m: m.update(epoch="2"),
    "a wrongly shaped tensor": lambda t, m: t.update({"model/fc2.bias": torch.zeros(11)}),
    "a missing tensor": lambda t, m: t.pop("model/conv1.weight"),
    "a missing optimizer tensor": lambda t, m: t.pop(next(k for k in t if k.startswith("optim/"))),
    "metadata emptied": lambda t, m: (m.clear(), m.update(format=1)),
    "an empty history": lambda t, m: m.update(history=[]),
}


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGE)
def test_damaged_checkpoint_is_one_line_on_resume(tmp_path, finished_run, data, capsys, damage):
    run = fresh_run(finished_run, tmp_path / "run")
    (run / checkpoints.WEIGHTS).unlink()  # so evaluate and predict read the checkpoint too
    _damage_checkpoint(run, CHECKPOINT_DAMAGE[damage])
    before = snapshot(run)
    msg = refused(capsys, "train", "--resume", run, "--quiet", "--no-plots", *data)
    assert checkpoints.CHECKPOINT in msg, msg
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "meta_json",
    ['["a", "list"]', '"a string"', "3", "null"],
)
def test_weights_whose_metadata_is_not_an_object_are_one_line(tmp_path, capsys, meta_json):
    from safetensors.torch import save_file

    f = tmp_path / "w.safetensors"
    save_file(dict(Net().state_dict()), f, metadata={"mnistlab": meta_json})
    png = tmp_path / "d.png"
    Image.new("L", (40, 40), 255).save(png)
    msg = refused(capsys, "predict", png, "--model", f)
    assert "metadata" in msg and str(f) in msg, msg


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool, torch.complex64])
def test_weights_of_the_wrong_dtype_are_one_line(tmp_path, capsys, dtype):
    f = tmp_path / "w.safetensors"
    tensors = dict(Net().state_dict())
    tensors["fc2.weight"] = torch.zeros(10, 50, dtype=dtype)
    checkpoints.atomic_save(tensors, f)
    png = tmp_path / "d.png"
    Image.new("L", (40, 40), 255).save(png)
    assert "non-float" in refused(capsys, "predict", png, "--model", f)


def test_all_nan_weights_are_refused_not_reported_as_nan_percent(tmp_path, finished_run, data, capsys):
    run = fresh_run(finished_run, tmp_path / "run")
    tensors, meta = checkpoints.read_safetensors(run / checkpoints.WEIGHTS)
    checkpoints.atomic_save(
        {k: torch.full_like(v, float("nan")) for k, v in tensors.items()}, run / "model.safetensors", meta
    )
    assert "NaN or infinite" in refused(capsys, "evaluate", run, "--json", *data)


# --------------------------------------------------------------------------------------------------------------
# Row 9: file names that are not text, or hold a newline


def test_file_names_are_printed_safely(tmp_path, env):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("L", (60, 60), 255).save(folder / "blank.png")
    seven = Image.new("L", (60, 60), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(seven).line([(12, 12), (48, 12), (26, 50)], fill=0, width=5)
    weird = [os.fsencode(folder) + b"/bad-\xff-name.png", os.fsencode(folder) + b"/two\nlines.png"]
    for name in weird:
        seven.save(name.decode("utf-8", "surrogateescape"))
    e = dict(env, PYTHONIOENCODING="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "mnistlab", "predict", str(folder)], capture_output=True, env=e, timeout=600
    )
    out, err = r.stdout.decode("utf-8"), r.stderr.decode("utf-8")
    assert r.returncode == 2 and "Traceback" not in err, err
    lines = out.splitlines()
    assert len(lines) == 2, out  # one line per readable image: the newline in a name is escaped
    assert any("bad-\\udcff-name.png: " in line for line in lines) and any("two\\nlines.png: " in x for x in lines)
    r = subprocess.run(
        [sys.executable, "-m", "mnistlab", "predict", str(folder), "--json"], capture_output=True, env=e, timeout=600
    )
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]  # valid JSON Lines
    assert len(rows) == 3 and sum("error" in row for row in rows) == 1


# --------------------------------------------------------------------------------------------------------------
# Properties: random edits of recipe.json, checkpoint metadata and options never give a traceback


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    key=st.sampled_from(["epochs", "batch_size", "lr", "seed", "scheduler", "device", "limit_train", "name", "x"]),
    value=JSON_VALUES,
    delete=st.booleans(),
)
def test_property_random_recipe_edits(tmp_path_factory, finished_run, data_dir, mirror, capsys, key, value, delete):
    run = fresh_run(finished_run, tmp_path_factory.mktemp("p") / "run")
    data = json.loads((run / "recipe.json").read_text())
    if delete:
        data.pop(key, None)
    else:
        data[key] = value
    (run / "recipe.json").write_text(json.dumps(data))
    before = snapshot(run)
    status, _ = in_process(
        capsys, "train", "--resume", run, "--quiet", "--no-plots", "--data-dir", data_dir, "--mirror", mirror
    )
    if status != 0:
        assert snapshot(run) == before


META_PATHS = ["epoch", "history", "recipe", "optimizer", "scheduler", "rng", "format"]


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(META_PATHS), inner=st.text(max_size=8), value=JSON_VALUES, depth=st.integers(0, 1))
def test_property_random_checkpoint_metadata(
    tmp_path_factory, finished_run, data_dir, mirror, capsys, path, inner, value, depth
):
    run = fresh_run(finished_run, tmp_path_factory.mktemp("p") / "run")

    def edit(tensors, meta):
        target = meta.get(path)
        if depth and isinstance(target, dict) and target:
            target[sorted(target)[len(inner) % len(target)]] = value
        else:
            meta[path] = value

    _damage_checkpoint(run, edit)
    before = snapshot(run)
    status, _ = in_process(
        capsys, "train", "--resume", run, "--quiet", "--no-plots", "--data-dir", data_dir, "--mirror", mirror
    )
    if status != 0:
        assert snapshot(run) == before


@settings(max_examples=examples(60), deadline=None)
@given(
    option=st.sampled_from(["--epochs", "--batch-size", "--lr", "--seed", "--limit-train", "--limit-test"]),
    value=st.one_of(st.integers(-(2**70), 2**70).map(str), st.floats().map(repr), st.text(max_size=8)),
)
def test_property_random_option_values(option, value):
    """Every option value is refused in one line or gives a recipe that validates (nothing is trained here)."""
    from mnistlab.cli import build_parser, recipe_from_args
    from mnistlab.errors import UserError

    try:
        recipe = recipe_from_args(build_parser().parse_args(["train", option, value]))
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert recipe.validate() is recipe


def test_files_in_formats_that_run_external_programs_are_refused_in_one_line(tmp_path, capsys):
    """EPS, PS and PDF (Pillow would hand EPS and PS to Ghostscript, which a hostile file keeps busy for ever) are
    refused from their header, whatever the file's name says, by `predict` and by the API; the other images still
    read."""
    import mnistlab
    from mnistlab.images.decode import open_image

    eps = tmp_path / "digit.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n{ 1 pop } loop\n")
    ps = tmp_path / "page.ps"
    ps.write_bytes(b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    good = REPO / "examples" / "digits" / "seven_pen.png"
    r = run_main("predict", eps, ps, pdf, good)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 3, r.stderr
    assert all("not an image in a format mnistlab reads (PNG, JPEG" in line for line in lines), lines
    assert "Ghostscript" not in r.stderr and "Traceback" not in r.stderr
    assert r.stdout.strip().endswith(": 7") or ": 7 " in r.stdout, r.stdout
    with pytest.raises(UserError, match="format mnistlab reads"):
        open_image(eps.read_bytes(), "the upload")
    assert isinstance(mnistlab.load(device="cpu").predict_each([eps])[0], UserError)


def test_torchvisions_pickled_cache_is_never_loaded(tmp_path, mirror, capsys):
    """`MNIST/processed/training.pt` and `test.pt` (torchvision's old cache, which it unpickles whenever both exist)
    are refused in one line, before torchvision sees them: a poisoned copy must not train silently."""
    from mnistlab.data.download import load_tensors

    root = tmp_path / "data"
    load_tensors(False, root, str(mirror), limit=1)  # a good data folder
    processed = root / "MNIST" / "processed"
    processed.mkdir()
    for name in ("training.pt", "test.pt"):
        torch.save((torch.zeros(1, 28, 28, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64)), processed / name)
    with pytest.raises(UserError, match="old cache .* pickles, which mnistlab does not load"):
        load_tensors(True, root, str(mirror))
    run = tmp_path / "run"
    r = run_main("train", "--epochs", "1", "--limit-train", "16", "--data-dir", root, "--mirror", mirror, "--out", run)
    assert not run.exists()
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "processed" in r.stderr, r.stderr


def _jpeg_of_scans(extra: int) -> bytes:
    """A small progressive JPEG with its last scan repeated `extra` times more."""
    import io

    import numpy as np

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype("uint8")).save(
        buf, "JPEG", progressive=True
    )
    data = buf.getvalue()
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * extra + b"\xff\xd9"


def _tiff_in_tiles(side: int) -> bytes:
    """A 28x28 deflate-compressed TIFF whose header says its tiles are side x side (libtiff allocates one whole)."""
    import struct

    entries = [(256, 4, 28), (257, 4, 28), (258, 3, 8), (259, 3, 8), (262, 3, 1), (277, 3, 1)]
    entries += [(322, 4, side), (323, 4, side), (324, 4, 0), (325, 4, 1000)]
    data_at = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, value in entries:
        value = data_at if tag == 324 else value
        out += struct.pack("<HHI", tag, kind, 1) + struct.pack(
            "<HH" if kind == 3 else "<I", *((value, 0) if kind == 3 else (value,))
        )
    return out + struct.pack("<I", 0) + bytes(1000)


def test_decoder_work_is_bounded_before_decoding(tmp_path):
    """Issue 19, rows 1b and 3: a JPEG of thousands of scans (libjpeg decodes the image once per scan: minutes) and a
    28x28 TIFF in 40000x40000 tiles (libtiff allocates a tile: gigabytes) are refused from their markers and tags,
    in one line, by the API and by `predict`; a normal progressive JPEG and a TIFF in small tiles still open."""
    from mnistlab.images.decode import MAX_SCANS, open_image

    assert open_image(_jpeg_of_scans(3)).size == (28, 28)
    with pytest.raises(UserError, match=f"JPEG of over {MAX_SCANS} scans"):
        open_image(_jpeg_of_scans(MAX_SCANS + 1), "the upload")
    with pytest.raises(UserError, match="28x28 TIFF in tiles of 1,600,000,000 pixels"):
        open_image(_tiff_in_tiles(40000), "the upload")
    with pytest.raises(UserError, match="damaged"):  # small tiles pass the check (this one's data is not deflate)
        open_image(_tiff_in_tiles(32), "the upload")
    scans, tiles = tmp_path / "scans.jpg", tmp_path / "tiles.tif"
    scans.write_bytes(_jpeg_of_scans(5000))
    tiles.write_bytes(_tiff_in_tiles(40000))
    r = run_main("predict", scans, tiles)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 2 and "Traceback" not in r.stderr, r.stderr


def test_float_tiff_with_a_nan_pixel_and_stale_part_files(tmp_path, mirror):
    """Issue 19, row 11: a float TIFF holding a NaN is one line, not "blank" after a numpy warning (or an Otsu
    traceback); a `.part` file left by a process killed while fetching is removed on the next fill, while a running
    process's is kept."""
    import io
    import warnings

    import numpy as np

    from mnistlab.data.download import load_tensors
    from mnistlab.images.preprocess import candidates

    a = np.zeros((28, 28), np.float32)
    a[5:20, 10:14], a[0, 0] = 1.0, np.nan
    buf = io.BytesIO()
    Image.fromarray(a, mode="F").save(buf, "TIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match="NaN or infinite pixels"):
            candidates(buf.getvalue())
    root = tmp_path / "data"
    load_tensors(False, root, str(mirror), limit=1)
    raw = root / "MNIST" / "raw"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = raw / f"train-images-idx3-ubyte.{dead.pid}.part", raw / f"t10k-images-idx3-ubyte.{os.getpid()}.part"
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    load_tensors(False, root, str(mirror), limit=1)
    assert not stale.exists() and live.exists()

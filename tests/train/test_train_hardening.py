"""Hostile recipes and run folders against `mnistlab train` (issue 28's training rows): a run that diverges stops
in one line, the TensorBoard logger never stops a run, recipe names, depth and size are checked before anything is
written, a damaged label file is never read silently, and one process at a time trains in a run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import one_line_error, run_main

from mnistlab.recipes import get_recipe
from mnistlab.store import checkpoints
from mnistlab.train.run import NonFiniteLoss, Run
from mnistlab.train.rundir import RunDir

TRAIN = ["train", "--device", "cpu", "--quiet", "--no-plots"]
TINY = ["--epochs", "2", "--limit-train", "256", "--limit-test", "128", "--batch-size", "64"]


@pytest.fixture
def data(data_dir, mirror) -> list[str]:
    """The data options for in-process CLI calls."""
    return ["--data-dir", str(data_dir), "--mirror", str(mirror)]


def write_recipe(path: Path, **settings) -> Path:
    path.write_text(json.dumps({"name": "hostile", **settings}))
    return path


# --------------------------------------------------------------------------------------------------------------
# Row 6: a recipe inside every range that diverges stops in one line; no non-finite model is written


def test_a_diverging_recipe_stops_in_one_line_and_exports_nothing(tmp_path, data):
    # lr 10, momentum 1, gamma 1: every setting in range; the weights blow up within the first epoch's 4 steps
    recipe = write_recipe(
        tmp_path / "diverge.json", optimizer="sgd", lr=10, momentum=1, scheduler="step", gamma=1, device="cpu"
    )
    run = tmp_path / "run"
    r = run_main(*TRAIN, "--recipe", recipe, *TINY, "--out", run, *data)
    msg = one_line_error(r)
    assert "loss became nan" in msg or "loss became inf" in msg, msg
    assert "in epoch 1 (step " in msg and "nothing was checkpointed yet" in msg, msg
    assert not (run / RunDir.WEIGHTS).exists() and not (run / RunDir.CHECKPOINT).exists()
    for line in (run / RunDir.METRICS).read_text().splitlines():  # no NaN record either
        assert all(math.isfinite(v) for v in json.loads(line).values() if isinstance(v, float)), line


def _tiny_run(tmp_path, data_dir, mirror) -> Run:
    recipe = get_recipe("default", epochs=1, limit_train=64, limit_test=64, batch_size=64, device="cpu")
    run = Run.create(recipe, tmp_path / "run", data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    run.train_step()
    run.evaluate()
    return run


def test_non_finite_weights_are_never_checkpointed_or_exported(tmp_path, data_dir, mirror):
    run = _tiny_run(tmp_path, data_dir, mirror)
    with torch.no_grad():
        run.model.fc2.bias[3] = float("inf")
    for write in (run.save, run.export):
        with pytest.raises(NonFiniteLoss, match=r"weights became NaN or infinite in epoch 1 \(step 1\)"):
            write()
    assert not (tmp_path / "run" / checkpoints.CHECKPOINT).exists()
    assert not (tmp_path / "run" / checkpoints.WEIGHTS).exists()


# --------------------------------------------------------------------------------------------------------------
# Rows 12, 14 and 15: a recipe's name, depth and size are checked before any folder or file is created


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.mark.parametrize("name", ["../../outside\x1b[31mRED", "{tmp}/absolute", ".hidden", "-option", "a" * 101])
def test_a_recipe_name_never_leaves_runs(tmp_path, data, name):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    name = name.format(tmp=tmp_path)
    recipe = write_recipe(work / "r.json", epochs=0.1, limit_train=64, limit_test=64, device="cpu")
    recipe.write_text(json.dumps({**json.loads(recipe.read_text()), "name": name}))
    before = files_under(tmp_path)
    msg = one_line_error(run_main(*TRAIN, "--recipe", recipe.name, *data, cwd=work))
    assert "r.json: name must be 1 to 100 letters" in msg and "\x1b" not in msg, msg
    assert files_under(tmp_path) == before  # not created two levels up, nor at the absolute path


def test_a_valid_name_names_a_folder_under_runs(tmp_path, data):
    recipe = write_recipe(tmp_path / "r.json", name="v1.2_tuned-x", epochs=0.25, limit_train=64, limit_test=64)
    r = run_main(*TRAIN, "--recipe", recipe.name, *data, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [run] = (tmp_path / "runs").iterdir()
    assert run.name.startswith("v1.2_tuned-x-") and (run / RunDir.WEIGHTS).is_file()


def nested(levels: int):
    value: dict | None = None
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "text, says",
    [
        ("[" * 100_000, "its JSON nests too deeply to be a recipe"),
        (json.dumps({"name": "deep", "tuned": nested(700)}), "tuned nests more than 8 levels deep"),
        ('{"name": "long", "epochs": ' + "9" * 5000 + "}", "cannot read"),  # past Python's int digits
    ],
    ids=["100000-brackets", "tuned-700-deep", "5000-digit-number"],
)
def test_a_deep_recipe_is_one_line_and_leaves_nothing(tmp_path, data, text, says):
    recipe = tmp_path / "deep.json"
    recipe.write_text(text)
    before = files_under(tmp_path)
    msg = one_line_error(run_main(*TRAIN, "--recipe", recipe, "--out", tmp_path / "run", *data, cwd=tmp_path))
    assert says in msg, msg
    assert files_under(tmp_path) == before  # no run folder, no empty recipe.json blocking the next try


def test_a_recipe_over_the_size_limit_is_refused_before_training(tmp_path, data):
    from mnistlab.errors import UserError
    from mnistlab.recipe_schema import RECIPE_MAX_BYTES

    big = write_recipe(tmp_path / "big.json", tuned={"note": "x" * RECIPE_MAX_BYTES})
    before = files_under(tmp_path)
    msg = one_line_error(run_main(*TRAIN, "--recipe", big, "--out", tmp_path / "run", *data))
    assert f"larger than the {RECIPE_MAX_BYTES:,} bytes a recipe file may hold" in msg, msg
    assert files_under(tmp_path) == before
    # a recipe made in Python, never read from a file, meets the same limit (it goes into every checkpoint)
    with pytest.raises(UserError, match=f"more than the {RECIPE_MAX_BYTES:,} a recipe may hold"):
        get_recipe("default", tuned={"note": "x" * RECIPE_MAX_BYTES})
    get_recipe("default", tuned={"note": "x" * (RECIPE_MAX_BYTES // 2)})  # under it: fine


# --------------------------------------------------------------------------------------------------------------
# Row 19: one process at a time trains in a run folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir, mirror) -> Path:
    """A 1-epoch run folder of a 2-epoch StepLR recipe (resumable, a few seconds of training)."""
    from mnistlab.train.training import fit

    recipe = get_recipe("seed", epochs=1, limit_train=256, limit_test=128, batch_size=64, device="cpu")
    run = tmp_path_factory.mktemp("finished") / "run"
    fit(recipe, out=run, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def held(folder: Path):
    """The folder's lock, taken by this (test) process as a `mnistlab train` running in it would."""
    import fcntl

    f = open(folder / RunDir.LOCK, "a")  # noqa: SIM115
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_a_second_resume_of_a_folder_in_use_is_refused(tmp_path, finished_run, data):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    with held(run):
        msg = one_line_error(run_main(*TRAIN, "--resume", run, "--epochs", "2", *data))
        assert f"{run} is in use: another process is training in it" in msg, msg
        assert snapshot(run) == before  # train.log not doubled, metrics untouched
    r = run_main(*TRAIN, "--resume", run, "--epochs", "2", *data)  # the lock let go: it resumes
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["epoch"] for line in (run / RunDir.METRICS).read_text().splitlines()] == [1, 2]
    assert (run / RunDir.LOG).read_text().count("Resuming") == 1


def test_a_fresh_run_into_a_folder_in_use_is_refused(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    with held(run):
        msg = one_line_error(run_main(*TRAIN, "--epochs", "0.25", "--limit-train", "64", "--out", run, *data))
        assert "is in use" in msg, msg
        assert {p.name for p in run.iterdir()} == {RunDir.LOCK}  # no recipe.json: the folder is free again after


def test_a_run_made_step_by_step_holds_its_folder_until_released(tmp_path, data_dir, mirror):
    from mnistlab.errors import UserError

    run = _tiny_run(tmp_path, data_dir, mirror)
    run.save()
    with pytest.raises(UserError, match="is in use"):
        Run.resume(tmp_path / "run", data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    run.release()
    Run.resume(tmp_path / "run", data_dir=data_dir, mirror=str(mirror), progress=False, echo=False).release()


def test_a_header_safetensors_refuses_is_not_called_a_full_disk(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from mnistlab.errors import UserError

    def refuse(*args, **kw):
        raise SafetensorError("Error while serializing: header too large")

    monkeypatch.setattr(checkpoints, "save_file", refuse)
    with pytest.raises(UserError) as e:
        checkpoints.atomic_save({"w": torch.zeros(2)}, tmp_path / "m.safetensors", {"big": "x"})
    assert "header too large; the previous files are kept" in str(e.value) and "free" not in str(e.value)
    assert list(tmp_path.iterdir()) == []

    def full(*args, **kw):  # what safetensors raises on a full disk: that one says how much space was needed
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoints, "save_file", full)
    with pytest.raises(UserError, match="MB free there; the previous files are kept"):
        checkpoints.atomic_save({"w": torch.zeros(2)}, tmp_path / "m.safetensors", {"big": "x"})


# --------------------------------------------------------------------------------------------------------------
# Row 9: the TensorBoard logger is optional: a folder it cannot write is said once, and the run goes on


def _run_goes_on(r, run: Path) -> str:
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()  # once, however many writes it skipped
    assert line.startswith("mnistlab: warning: TensorBoard event files are no longer written to "), line
    assert str(run / RunDir.TENSORBOARD) in line and "the run goes on without them" in line, line
    assert [json.loads(x)["epoch"] for x in (run / RunDir.METRICS).read_text().splitlines()] == [1, 2]
    assert (run / RunDir.WEIGHTS).is_file()
    return line


def test_a_tensorboard_folder_that_cannot_be_made_is_said_once(tmp_path, data):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    run.mkdir()
    (run / RunDir.TENSORBOARD).write_text("a file where the folder goes (as a read-only disk refuses it)")
    line = _run_goes_on(run_main(*TRAIN, *TINY, "--out", run, *data), run)
    assert "FileExistsError" in line, line


def test_a_full_disk_under_tensorboard_is_said_once(tmp_path, data, monkeypatch):
    pytest.importorskip("tensorboard")
    import errno

    from tensorboard.summary.writer.record_writer import RecordWriter

    written = []

    def fill_up(self, data):  # the disk is full after the first few records
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(data)

    monkeypatch.setattr(RecordWriter, "write", fill_up)
    run = tmp_path / "run"
    line = _run_goes_on(run_main(*TRAIN, *TINY, "--out", run, *data), run)
    assert "[Errno 28] No space left on device" in line and len(written) == 3, line


# --------------------------------------------------------------------------------------------------------------
# Row 17: a label file changed behind mnistlab's back, its size and modification time kept, is never read as it is


def test_labels_shifted_with_their_mtime_kept_are_extracted_again(tmp_path, data_dir):
    import os
    import shutil

    import numpy as np

    from mnistlab.data import download as data
    from mnistlab.data.integrity import REHASH_MAX_BYTES

    good_images, good = data.load_tensors(False, data_dir)
    shutil.copytree(data_dir / "MNIST", tmp_path / "MNIST")  # a copy: the session's data stays as it is
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    assert labels.stat().st_size <= REHASH_MAX_BYTES
    st = labels.stat()
    raw = labels.read_bytes()
    labels.write_bytes(raw[:8] + np.roll(np.frombuffer(raw[8:], np.uint8), 1).tobytes())
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns))  # as bit rot, or `cp -a` of a damaged folder, leaves it
    images, got = data.load_tensors(False, tmp_path)
    assert torch.equal(got, good) and torch.equal(images, good_images)  # read right, not 1% accuracy
    assert labels.read_bytes() == raw  # extracted again from the verified .gz

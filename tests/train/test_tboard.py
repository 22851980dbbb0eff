"""mnistlab.train.tboard: a run's TensorBoard event files (its scalars, hparams and pictures), read back with the
tensorboard package's own readers; a resumed run writes no step twice; without the package, one line and the run goes
on."""

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import run_main

from mnistlab.recipes import get_recipe
from mnistlab.train import tboard
from mnistlab.train.run import Run
from mnistlab.train.rundir import RunDir
from mnistlab.train.training import fit

TRAIN = ["train", "--device", "cpu", "--quiet", "--epochs", "1", "--limit-train", "128", "--limit-test", "128"]


def _small(**kw):
    # 4 steps an epoch, 8 in all
    return get_recipe(
        "default", **{**dict(epochs=2, limit_train=128, limit_test=128, batch_size=32, device="cpu"), **kw}
    )


def _quiet(data_dir, mirror) -> dict:
    return dict(data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)


def accumulated(run: Path):
    """The run's event files as TensorBoard shows them (EventAccumulator, everything kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / RunDir.TENSORBOARD), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def raw_events(path: Path) -> list:
    """Every event of the file `path`, or of every file in the folder `path`, as written (nothing purged)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = [path] if path.is_file() else sorted(path.glob("events.out.tfevents.*"))
    return [e for f in files for e in EventFileLoader(str(f)).Load()]


def scalar_steps(events) -> Counter:
    """(tag, step) -> how many times it was written."""
    return Counter((v.tag, e.step) for e in events for v in e.summary.value)


@pytest.fixture
def installed():
    pytest.importorskip("tensorboard")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir, mirror) -> Run:
    """`_small()` trained with a run folder, and its pictures drawn."""
    pytest.importorskip("tensorboard")
    run = fit(_small(), out=tmp_path_factory.mktemp("finished") / "run", **_quiet(data_dir, mirror))
    run.plot()
    return run


def test_a_run_writes_its_metrics_hparams_and_pictures(finished):
    run = finished
    acc = accumulated(run.folder.path)
    tags = acc.Tags()
    assert set(tags["scalars"]) == {*tboard.SCALARS.values(), "train/batch_loss", "train/lr"}
    for tag in tboard.SCALARS.values():  # at each evaluation: the ends of the two epochs
        assert [e.step for e in acc.Scalars(tag)] == [4, 8], tag
    assert [e.value for e in acc.Scalars("eval/accuracy")] == pytest.approx(run.history.column("test_acc"))
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(run.history.train_losses)
    assert [e.step for e in acc.Scalars("train/batch_loss")] == list(range(1, 9))  # every step on the CPU
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([run.lr_at(s) for s in range(8)])
    assert set(tags["images"]) == set(tboard.PICTURES)
    shown = acc.Images("confusion_matrix")[0]
    assert shown.step == 8 and (shown.width, shown.height) == (700, 600)  # the run's own PNG, not redrawn
    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["lr"].number_value == pytest.approx(run.recipe.lr)
    assert start.hparams["optimizer"].string_value == "adamw" and start.hparams["limit_test"].number_value == 128
    assert start.hparams["val"].string_value == "None"


def test_a_resumed_run_writes_no_step_twice(tmp_path, data_dir, mirror, finished):
    """Killed halfway through epoch 2 after an evaluation there reached the event files, resumed from the checkpoint
    of epoch 1 (step 4): what the killed process wrote past step 4 is dropped, nothing up to it is written again,
    and the numbers are those of the run that was never stopped."""
    quiet = _quiet(data_dir, mirror)
    killed = Run.create(_small(), tmp_path / "run", **quiet)
    killed.train_epoch()
    killed.evaluate()
    killed.save()
    killed.train_epoch(batches=2)
    killed.evaluate()  # step 6: in the event files, not in the checkpoint
    killed.board.close()
    killed.release()  # as a kill does: the run folder's lock
    board = tmp_path / "run" / RunDir.TENSORBOARD
    (old,) = board.iterdir()
    assert ("eval/accuracy", 6) in scalar_steps(raw_events(board))

    resumed = fit(None, out=tmp_path / "run", resume=True, **quiet)
    steps = scalar_steps(raw_events(board))
    assert max(steps.values()) == 1, "a (tag, step) written twice"
    assert {step for _, step in steps} == set(range(1, 9))
    (new,) = [f for f in board.iterdir() if f != old]  # the resumed process's file
    assert max(step for _, step in scalar_steps(raw_events(old))) == 4, "the killed process's steps past 4 dropped"
    assert min(step for _, step in scalar_steps(raw_events(new))) == 5, "nothing up to step 4 written again"

    acc, ref = accumulated(tmp_path / "run"), accumulated(finished.folder.path)  # the same recipe, never stopped
    for tag in ("eval/accuracy", "eval/loss", "train/loss", "train/batch_loss", "train/lr"):
        got, expected = [(e.step, e.value) for e in acc.Scalars(tag)], [(e.step, e.value) for e in ref.Scalars(tag)]
        assert got == expected, tag
    assert resumed.history.records[-1]["test_acc"] == finished.history.records[-1]["test_acc"]


def test_without_the_package_one_line_says_how_to_add_it_and_the_run_goes_on(tmp_path, env, monkeypatch):
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # `import tensorboard` now fails as if it were not installed
    r = run_main(*TRAIN, "--no-plots", "--out", tmp_path / "run", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [tboard.MISSING] and "pip install 'mnistlab[tensorboard]'" in tboard.MISSING
    assert "Done: test accuracy" in r.stdout and (tmp_path / "run" / RunDir.WEIGHTS).is_file()
    assert not (tmp_path / "run" / RunDir.TENSORBOARD).exists()


def test_without_a_folder_nothing_is_written_or_said(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    board = tboard.Board(None)  # no --out, or a rank other than 0 (Run gives those no folder)
    board.batch(1, torch.tensor(0.5), lambda step: 0.1)
    board.record(1, {})
    board.finished(1, get_recipe("default"))
    board.pictures(1)
    board.resumed(1)
    assert capsys.readouterr().err == "" and not list(tmp_path.iterdir())


def test_batch_losses_are_kept_every_n_steps_without_reading_them(tmp_path, installed):
    board = tboard.Board(RunDir(tmp_path), every=20)
    for step in range(1, 61):
        board.batch(step, torch.tensor(float(step)), lambda s: s / 100)
    assert [(s, lr) for s, lr, _ in board._batches] == [(20, 0.19), (40, 0.39), (60, 0.59)]
    assert not (tmp_path / RunDir.TENSORBOARD).exists()  # nothing written until the next evaluation or the end
    board.finished(60, get_recipe("default"))
    acc = accumulated(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("train/batch_loss")] == [(20, 20.0), (40, 40.0), (60, 60.0)]

"""Reliability: kill -9 and resume bit-identically, atomic checkpoints, non-finite loss, Ctrl-C, bad input."""

import itertools
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from conftest import one_line_error, run_cli, run_main, untimed
from PIL import Image
from safetensors.torch import load_file

from mnistlab.data import download as data
from mnistlab.errors import UserError
from mnistlab.recipes import get_recipe
from mnistlab.store import checkpoints
from mnistlab.train import run as run_module
from mnistlab.train.run import NonFiniteLoss
from mnistlab.train.training import fit

TRAIN = ["train", "--device", "cpu", "--quiet", "--no-plots"]
SMALL = ["--epochs", "4", "--limit-train", "1024", "--limit-test", "256", "--batch-size", "64"]
# 4 batches an epoch, so both DataLoader workers take part; StepLR still steps after epoch 2
SEED_SMALL = ["--recipe", "seed", "--epochs", "3", "--limit-train", "512", "--batch-size", "128", "--limit-test", "256"]


# --------------------------------------------------------------------------------------------------------------
# Helpers


def start_cli(*args, env, log: Path):
    """The CLI in the background, stdout and stderr into files (no pipe can fill up and stall it)."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, "-m", "mnistlab", *map(str, args)], stdout=out, stderr=err, env=env)


def wait_for(cond, proc, what: str, timeout: float = 600.0) -> None:
    """Poll `cond()` every 10 ms; fail if `proc` ends first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (status {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def metric_lines(run: Path) -> list[str]:
    p = run / "metrics.jsonl"
    return p.read_text().splitlines() if p.exists() else []


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in metric_lines(run)]


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys(), (a, b)
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"{a.name}: tensors differ from the uninterrupted run: {different}"


def checkpoint_epoch(run: Path) -> int:
    _, meta = checkpoints.read_safetensors(run / checkpoints.CHECKPOINT)
    return meta["epoch"]


def _tiny(**kw):
    base = dict(epochs=2, limit_train=256, limit_test=128, batch_size=64, device="cpu")
    return get_recipe("default", **{**base, **kw})


# --------------------------------------------------------------------------------------------------------------
# 1. kill -9 mid-epoch, resume: bit-identical to the uninterrupted run


def _kill_then_resume(tmp_path, env, args, after_lines: int, delay: float) -> Path:
    """Start `train args`, SIGKILL it `delay` s after metrics.jsonl has `after_lines` lines, resume it."""
    run = tmp_path / "killed"
    proc = start_cli(*TRAIN, *args, "--out", run, env=env, log=tmp_path / "killed")
    wait_for(lambda: len(metric_lines(run)) >= after_lines, proc, f"{after_lines} lines in metrics.jsonl")
    time.sleep(delay)
    assert proc.poll() is None, f"the run finished within {delay:.2f} s; nothing was interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=600) == -signal.SIGKILL
    assert not (run / checkpoints.WEIGHTS).exists(), "killed before the end: no final weights yet"

    # the checkpoint on disk is a whole one, whatever moment the kill hit
    epoch = checkpoint_epoch(run)
    assert epoch >= after_lines, (epoch, metric_lines(run))
    # Make the worst case of a kill certain: a line of an epoch after the checkpoint plus a torn line, and the
    # temporary file of a checkpoint write that was cut short. Resume must drop all of them.
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**metrics(run)[-1], "epoch": epoch + 1, "train_loss": 123.0}) + "\n")
        f.write('{"epoch": ' + str(epoch + 2) + ', "train_lo')
    (run / f"{checkpoints.CHECKPOINT}.k1ll3d.tmp").write_bytes(b"\0" * 1000)

    r = run_cli("train", "--resume", run, "--quiet", "--no-plots", env=env)
    assert r.returncode == 0, r.stderr
    assert f"Resuming {run} after epoch {epoch}" in r.stdout
    assert not list(run.glob("*.tmp")), sorted(p.name for p in run.iterdir())
    return run


def _assert_resumed_like_uninterrupted(run: Path, ref: Path, epochs: int, note: str) -> None:
    recs = metrics(run)
    assert [m["epoch"] for m in recs] == list(range(1, epochs + 1)), (note, metric_lines(run))
    assert untimed(recs) == untimed(metrics(ref)), note
    assert_same_tensors(run / checkpoints.WEIGHTS, ref / checkpoints.WEIGHTS)
    # model, optimizer and RNG states too: the resumed run is the uninterrupted one
    assert_same_tensors(run / checkpoints.CHECKPOINT, ref / checkpoints.CHECKPOINT)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, env):
    delay = random.uniform(0.05, 0.3)  # some moment inside epoch 3 (an epoch takes about 0.5 s here)
    run = _kill_then_resume(tmp_path, env, SMALL, after_lines=2, delay=delay)
    ref = tmp_path / "uninterrupted"
    r = run_cli(*TRAIN, *SMALL, "--out", ref, env=env)
    assert r.returncode == 0, r.stderr
    _assert_resumed_like_uninterrupted(run, ref, 4, f"killed {delay:.3f} s after epoch 2")


def test_seed_recipe_with_loader_workers_resumes_bit_identically(tmp_path, env):
    """The seed path: DataLoader with 2 worker processes doing random PIL augmentation, SGD, StepLR."""
    delay = random.uniform(0.0, 0.5)
    run = _kill_then_resume(tmp_path, env, SEED_SMALL, after_lines=1, delay=delay)
    ref = tmp_path / "uninterrupted"
    r = run_cli(*TRAIN, *SEED_SMALL, "--out", ref, env=env)
    assert r.returncode == 0, r.stderr
    _assert_resumed_like_uninterrupted(run, ref, 3, f"killed {delay:.3f} s after epoch 1")
    assert [m["lr"] for m in metrics(run)] == pytest.approx([0.01, 0.01, 0.001])


# --------------------------------------------------------------------------------------------------------------
# 2. A checkpoint write that fails half-way leaves the previous checkpoint whole


def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, data_dir, mirror, monkeypatch):
    run = tmp_path / "run"
    real_save_file = checkpoints.save_file
    seen: dict = {"calls": 0}

    def half_then_disk_full(tensors, filename, metadata=None):
        seen["calls"] += 1
        if seen["calls"] == 1:  # epoch 1's checkpoint goes through
            return real_save_file(tensors, filename, metadata=metadata)
        seen["before"] = (run / checkpoints.CHECKPOINT).read_bytes()
        seen["tmp"] = Path(filename)
        blob = safetensors.torch.save(tensors, metadata=metadata)
        Path(filename).write_bytes(blob[: len(blob) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", half_then_disk_full)
    with pytest.raises(
        UserError, match=r"No space left on device; about 7\.1 MB needed in .*the previous files are kept"
    ):
        fit(_tiny(epochs=3), data_dir=data_dir, mirror=str(mirror), out=run, progress=False, echo=False)
    assert seen["calls"] == 2
    assert seen["tmp"].parent == run and seen["tmp"].name != checkpoints.CHECKPOINT  # it wrote a temporary file
    assert (run / checkpoints.CHECKPOINT).read_bytes() == seen["before"], "the previous checkpoint was touched"
    assert not list(run.glob("*.tmp")), sorted(p.name for p in run.iterdir())
    assert checkpoint_epoch(run) == 1
    assert [m["epoch"] for m in metrics(run)] == [1]  # metrics.jsonl follows the checkpoint
    assert not (run / checkpoints.WEIGHTS).exists()

    # the kept checkpoint is loadable and resumes to the same end as an uninterrupted run; a stale metrics line
    # (of an epoch the checkpoint does not hold) is gone as soon as the resumed run starts
    monkeypatch.setattr(checkpoints, "save_file", real_save_file)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**metrics(run)[0], "epoch": 2}) + "\n")
    at_first_epoch = []

    def on_epoch(rec):
        if not at_first_epoch:
            at_first_epoch.append([m["epoch"] for m in metrics(run)])

    resumed = fit(
        _tiny(epochs=3),
        data_dir=data_dir,
        mirror=str(mirror),
        out=run,
        resume=True,
        echo=False,
        progress=False,
        on_record=on_epoch,
    )
    assert at_first_epoch[0] == [1]
    ref = fit(_tiny(epochs=3), data_dir=data_dir, mirror=str(mirror), out=tmp_path / "ref", echo=False, progress=False)
    assert [r["epoch"] for r in resumed.history.records] == [1, 2, 3]
    assert untimed(resumed.history.records) == untimed(ref.history.records)
    assert_same_tensors(run / checkpoints.WEIGHTS, tmp_path / "ref" / checkpoints.WEIGHTS)


def test_atomic_save_never_leaves_a_torn_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    checkpoints.atomic_save({"a": torch.arange(1000.0)}, path, {"v": 1})
    before = path.read_bytes()

    def torn(tensors, filename, metadata=None):
        Path(filename).write_bytes(safetensors.torch.save(tensors, metadata=metadata)[:100])
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(checkpoints, "save_file", torn)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.atomic_save({"a": torch.zeros(1000)}, path, {"v": 2})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    tensors, meta = checkpoints.read_safetensors(path)
    assert torch.equal(tensors["a"], torch.arange(1000.0)) and meta == {"v": 1}


# --------------------------------------------------------------------------------------------------------------
# 3. A loss that becomes NaN stops the run with one clear message and keeps the last good checkpoint


def _nan_after(n: int):
    """A criterion that is nll for the first n batches and NaN from then on."""
    calls = itertools.count(1)

    def criterion(output, target):
        loss = F.nll_loss(output, target)
        return loss * float("nan") if next(calls) > n else loss

    return criterion


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, mirror, monkeypatch):
    monkeypatch.setattr(run_module, "build_criterion", lambda recipe: _nan_after(4))  # 4 batches = epoch 1
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLoss) as e:
        fit(_tiny(epochs=3), data_dir=data_dir, mirror=str(mirror), out=run, progress=False, echo=False)
    assert isinstance(e.value, UserError)
    msg = str(e.value)
    assert "nan" in msg and "epoch 2" in msg and "checkpoint (epoch 1)" in msg and str(run) in msg, msg
    assert "--lr" in msg and "\n" not in msg
    tensors, meta = checkpoints.read_safetensors(run / checkpoints.CHECKPOINT)
    assert meta["epoch"] == 1
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model/"))
    assert [m["epoch"] for m in metrics(run)] == [1]
    assert not (run / checkpoints.WEIGHTS).exists()
    assert "Epoch 2" in (run / "train.log").read_text()


_NAN_CLI = """
import itertools, sys
import torch.nn.functional as F
import mnistlab.train.run

calls = itertools.count(1)

def criterion(output, target):
    loss = F.nll_loss(output, target)
    return loss * float("nan") if next(calls) > 4 else loss

mnistlab.train.run.build_criterion = lambda recipe: criterion
from mnistlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_non_finite_loss_on_the_command_line_is_one_line_and_status_2(tmp_path, env):
    run = tmp_path / "run"
    args = [*TRAIN, "--epochs", "3", "--limit-train", "256", "--limit-test", "128", "--batch-size", "64", "--out", run]
    r = subprocess.run(
        [sys.executable, "-c", _NAN_CLI, *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
    msg = one_line_error(r)
    assert "became nan in epoch 2" in msg and "checkpoint (epoch 1)" in msg and "--lr" in msg, msg
    assert checkpoint_epoch(run) == 1


# --------------------------------------------------------------------------------------------------------------
# 4. Ctrl-C and SIGTERM


@pytest.mark.parametrize(
    "sig,status,word",
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["ctrl-c", "term"],
)
def test_interrupt_exits_with_one_line_and_the_run_resumes(tmp_path, env, sig, status, word):
    """Ctrl-C (exit 130) and SIGTERM (exit 143, as from a scheduler or `kill`) both stop with the resume command."""
    run = tmp_path / "run"
    args = ["--epochs", "10", "--limit-train", "512", "--limit-test", "128", "--batch-size", "64"]
    proc = start_cli(*TRAIN, *args, "--out", run, env=env, log=tmp_path / "signal")
    wait_for(lambda: (run / checkpoints.CHECKPOINT).exists(), proc, "the first checkpoint")
    proc.send_signal(sig)
    assert proc.wait(timeout=600) == status
    err = (tmp_path / "signal.err").read_text()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mnistlab: {word}") and "Traceback" not in err, err
    assert f"--resume {run}" in lines[0], lines[0]
    assert not (run / checkpoints.WEIGHTS).exists()
    done = checkpoint_epoch(run)  # a whole checkpoint, whatever the signal hit
    assert 1 <= done < 10

    r = run_cli("train", "--resume", run, "--quiet", "--no-plots", env=env)
    assert r.returncode == 0, r.stderr
    assert f"Resuming {run} after epoch {done}" in r.stdout and not list(run.glob("*.tmp"))
    assert [m["epoch"] for m in metrics(run)] == list(range(1, 11))
    assert (run / checkpoints.WEIGHTS).is_file()


def test_ctrl_c_before_the_first_checkpoint_does_not_send_the_user_in_circles(tmp_path, env):
    """Interrupted during epoch 1 there is nothing to resume: the message must say so, not suggest --resume."""
    run = tmp_path / "run"
    args = ["--epochs", "1", "--limit-train", "8192", "--limit-test", "128", "--batch-size", "64"]
    proc = start_cli(*TRAIN, *args, "--out", run, env=env, log=tmp_path / "ctrl-c")
    wait_for(
        lambda: (run / "train.log").exists() and "Epoch 1" in (run / "train.log").read_text(), proc, "epoch 1 to start"
    )
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=600) == 130
    assert not (run / checkpoints.CHECKPOINT).exists(), "epoch 1 finished before the interrupt; make it longer"
    err = (tmp_path / "ctrl-c.err").read_text()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "--resume" not in lines[0] and "first" in lines[0], lines[0]
    # and --resume, if tried anyway, says what to do instead
    msg = one_line_error(run_cli("train", "--resume", run, "--quiet", "--no-plots", env=env))
    assert "checkpoint" in msg and "--out" in msg, msg


# --------------------------------------------------------------------------------------------------------------
# 5. Bad input: one line on stderr and exit status 2 each


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, data_dir, mirror) -> Path:
    """A run folder trained in a few seconds (512 images, 1 epoch): enough to exercise predict."""
    run = tmp_path_factory.mktemp("quick") / "run"
    recipe = get_recipe("default", epochs=1, limit_train=512, limit_test=256, device="cpu")
    fit(recipe, data_dir=data_dir, mirror=str(mirror), out=run, progress=False, echo=False)
    return run


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory, data_dir) -> list[Path]:
    """Two MNIST test digits as 100x100 PNGs, dark ink on light paper, as a user would draw them."""
    folder = tmp_path_factory.mktemp("digits")
    x, y = data.load_tensors(False, data_dir, limit=2)
    paths = []
    for i in range(2):
        p = folder / f"digit{i}-{int(y[i])}.png"
        Image.fromarray(255 - x[i].numpy()).resize((100, 100), Image.BILINEAR).save(p)
        paths.append(p)
    return paths


class _Payload:
    """Unpickling this touches a marker file: proof that a loader ran pickle on untrusted data."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def bad(tmp_path_factory, quick_run, digit_pngs, data_dir) -> dict:
    """Things a user may hand mnistlab by mistake (or malice), made once for the cases below."""
    tmp = tmp_path_factory.mktemp("bad")
    p = {"tmp": tmp, "run": quick_run, "png": digit_pngs[0]}
    p["not_a_run"] = tmp / "not-a-run"
    p["not_a_run"].mkdir()
    (p["not_a_run"] / "notes.txt").write_text("hello\n")
    # a run stopped before its first checkpoint: recipe.json but nothing to resume from
    p["unfinished"] = tmp / "unfinished"
    p["unfinished"].mkdir()
    shutil.copy(quick_run / "recipe.json", p["unfinished"])
    (p["unfinished"] / "metrics.jsonl").write_text("")
    # a malicious pickle where weights are expected; check first that the payload really works
    p["marker"] = tmp / "PAYLOAD-RAN"
    evil = pickle.dumps({"conv1.weight": _Payload(p["marker"])})
    pickle.loads(evil)
    assert p["marker"].exists(), "the payload is not a working one"
    p["marker"].unlink()
    p["evil_file"] = tmp / "weights.pt"
    p["evil_file"].write_bytes(evil)
    p["evil_run"] = tmp / "evil-run"
    p["evil_run"].mkdir()
    (p["evil_run"] / checkpoints.WEIGHTS).write_bytes(evil)
    p["text"] = tmp / "notes.png"
    p["text"].write_text("this is not an image\n")
    p["empty"] = tmp / "empty.png"
    p["empty"].write_bytes(b"")
    # a data folder whose t10k labels file was cut short
    p["bad_data"] = tmp / "data"
    raw = p["bad_data"] / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (data_dir / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(gz, raw)
    p["labels"] = raw / "t10k-labels-idx1-ubyte.gz"
    p["labels"].write_bytes(p["labels"].read_bytes()[:1000])
    return p


BAD_INPUTS = {  # case: (arguments, words the one line must hold), each built from the `bad` fixture
    "evaluate a missing folder": lambda p: (["evaluate", p["tmp"] / "missing"], ["missing", "not a folder"]),
    "evaluate a folder that is no run": lambda p: (["evaluate", p["not_a_run"]], [p["not_a_run"], "not a run folder"]),
    "resume a folder that is no run": lambda p: (
        ["train", "--resume", p["not_a_run"]],
        [p["not_a_run"], "not a run folder"],
    ),
    "resume a run with no checkpoint": lambda p: (
        ["train", "--resume", p["unfinished"], "--quiet"],
        [p["unfinished"], checkpoints.CHECKPOINT],
    ),
    "weights that do not exist": lambda p: (
        ["predict", p["png"], "--model", p["tmp"] / "missing.safetensors"],
        ["missing.safetensors", "does not exist"],
    ),
    "a pickle as weights": lambda p: (
        ["predict", p["png"], "--model", p["evil_file"]],
        [p["evil_file"], "safetensors"],
    ),
    "a pickle in a run folder": lambda p: (
        ["predict", p["png"], "--model", p["evil_run"]],
        [checkpoints.WEIGHTS, "safetensors"],
    ),
    "a text file as an image": lambda p: (["predict", p["text"], "--model", p["run"]], [p["text"], "not an image"]),
    "an empty image file": lambda p: (["predict", p["empty"], "--model", p["run"]], [p["empty"], "empty"]),
    "an image that does not exist": lambda p: (
        ["predict", p["tmp"] / "nope.png", "--model", p["run"]],
        ["nope.png", "does not exist"],
    ),
    "top-k 0": lambda p: (["predict", p["png"], "--top-k", "0"], ["--top-k"]),
    "a truncated data file": lambda p: (
        ["train", "--data-dir", p["bad_data"], "--limit-train", "10", "--out", p["tmp"] / "r", "--device", "cpu"],
        [p["labels"], "delete it"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_status_2(case, bad, env):
    args, needles = BAD_INPUTS[case](bad)
    r = run_main(*args, env=env)
    line = one_line_error(r)
    assert r.stdout == "", r.stdout
    for needle in needles:
        assert str(needle) in line, line
    assert not bad["marker"].exists(), "mnistlab unpickled the malicious weights file"
    assert bad["labels"].stat().st_size == 1000  # reported, not touched
    assert not (bad["tmp"] / "r").exists(), "a run that could not start left a folder behind"


# the history of one evaluated epoch, as a checkpoint must hold it
ONE_EPOCH = [
    dict(
        epoch=1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5, lr=0.01, train_time_s=1.0, imgs_per_s=100.0
    )
]


def test_checkpoint_of_a_schedule_with_tensor_learning_rates(tmp_path):
    """A CUDA-graph run keeps lr in tensors, so its OneCycle state holds tensors: the checkpoint must store them."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(0.01))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)
    for _ in range(3):
        opt.step()
        sched.step()
    assert any(
        torch.is_tensor(v) or (isinstance(v, list) and torch.is_tensor(v[0])) for v in sched.state_dict().values()
    )
    state = dict(model=model, optimizer=opt, scheduler=sched)
    checkpoints.save_checkpoint(tmp_path / "c.safetensors", **state, epoch=1, history=ONE_EPOCH, recipe={})
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=torch.tensor(0.01))
    sched2 = torch.optim.lr_scheduler.OneCycleLR(opt2, max_lr=0.01, total_steps=10)
    checkpoints.load_checkpoint(tmp_path / "c.safetensors", model=model2, optimizer=opt2, scheduler=sched2)
    sched.step()
    sched2.step()
    assert float(opt2.param_groups[0]["lr"]) == pytest.approx(float(opt.param_groups[0]["lr"]))


def test_resumed_optimizer_state_keeps_the_parameters_layout(tmp_path):
    """Checkpoints store tensors contiguous; a channels_last model's AdamW moments must come back in its layout
    (fused AdamW on CUDA refuses mixed layouts, which broke resuming on a GPU)."""
    from mnistlab.model import Net

    def build():
        model = Net().to(memory_format=torch.channels_last)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    model, opt = build()
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    opt.step()
    state = dict(model=model, optimizer=opt, scheduler=None)
    checkpoints.save_checkpoint(tmp_path / "c.safetensors", **state, epoch=1, history=ONE_EPOCH, recipe={})
    model2, opt2 = build()
    checkpoints.load_checkpoint(tmp_path / "c.safetensors", model=model2, optimizer=opt2, scheduler=None)
    for p, p2 in zip(model.parameters(), model2.parameters()):
        for k in ("exp_avg", "exp_avg_sq"):
            assert opt2.state[p2][k].stride() == p2.stride(), k
            assert torch.equal(opt2.state[p2][k], opt.state[p][k]), k

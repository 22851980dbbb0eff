"""Several processes (DistributedDataParallel on gloo, 2 ranks on the CPU): the same training as one process, one
writer, a killed rank restarted and resumed bit-identically, and one-line errors from `mnistlab train --nproc`."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import one_line_error, run_cli, run_main
from safetensors.torch import load_file

from mnistlab.data.loaders import Augment, DeviceLoader, EpochSampler, epoch_seed
from mnistlab.model import Net
from mnistlab.recipes import get_recipe
from mnistlab.store import checkpoints
from mnistlab.train.loops import set_lr
from mnistlab.train.run import Run
from mnistlab.train.training import fit

TRAIN = ["train", "--device", "cpu", "--quiet", "--no-plots", "--amp", "off"]
# 3 epochs of 8 global batches of 128 (64 per rank); float32 throughout, so the numbers can be compared
SMALL = ["--epochs", "3", "--limit-train", "1024", "--limit-test", "500", "--batch-size", "128"]


def max_abs_diff(a: Path, b: Path) -> float:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    return max((ta[k] - tb[k]).abs().max().item() for k in ta)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_thread_env(data_dir, mirror) -> dict:
    # one thread per process on this 2-core machine: what `--nproc 2` gives each rank, and the same for 1 process
    return dict(os.environ, MNISTLAB_DATA=str(data_dir), MNISTLAB_MIRROR=str(mirror), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, one_thread_env) -> Path:
    """SMALL trained by `mnistlab train --nproc 2`, uninterrupted; the run folder."""
    cwd = tmp_path_factory.mktemp("two-ranks")
    r = run_cli(*TRAIN, *SMALL, "--nproc", "2", "--out", "run", env=one_thread_env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in cwd.iterdir()) == ["run"], "one run folder, nothing else"
    return cwd / "run"


# --------------------------------------------------------------------------------------------------------------
# The data: what each rank trains on does not depend on the number of ranks


@pytest.mark.parametrize("world_size", [2, 4])
def test_global_batches_and_their_augmentation_do_not_depend_on_the_world_size(world_size):
    n, batch = 1000, 64  # n divisible by the world size: no padding; the last batch is smaller (1000 = 15*64 + 40)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
    labels = torch.arange(n)  # the label names the image

    def loader(rank, size):
        return DeviceLoader(
            images, labels, batch // size, "cpu", shuffle=True, augment=Augment(), seed=3, rank=rank, world_size=size
        )

    one = loader(0, 1)
    shards = [loader(r, world_size) for r in range(world_size)]
    for epoch in (1, 2):
        for s in (one, *shards):
            s.set_epoch(epoch)
        whole = list(one)
        parts = [list(s) for s in shards]
        assert all(len(p) == len(whole) for p in parts), "the same number of steps"
        for i, (x, y) in enumerate(whole):
            for r, part in enumerate(parts):
                xr, yr = part[i]
                # rank r holds positions r::world_size of global batch i, augmented the same way, bit for bit
                assert torch.equal(yr, y[r::world_size]), (epoch, i, r)
                assert torch.equal(xr, x[r::world_size]), (epoch, i, r)


def test_one_process_draws_what_it_always_drew():
    """world_size 1 is the old path: the same draws from the epoch generator (resume and recorded numbers)."""
    x = torch.rand(8, 1, 28, 28)
    a = Augment()(x, torch.Generator().manual_seed(7))
    b = Augment()(x, torch.Generator().manual_seed(7), rank=0, world_size=1)
    assert torch.equal(a, b)
    assert torch.equal(EpochSampler(50, seed=2).indices(3), EpochSampler(50, seed=2, rank=0, world_size=1).indices(3))


# --------------------------------------------------------------------------------------------------------------
# Training


def _sharded_reference(recipe, data_dir, mirror, world_size: int = 2) -> dict[str, torch.Tensor]:
    """The weights of training `recipe` in this one process the way `world_size` DDP ranks do: every global batch
    split into the ranks' shards (positions r::world_size), the gradient the mean of the shards' gradients."""
    run = Run(recipe, None, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    model, loader = run.model, run.train_loader
    model.train()
    for epoch in range(1, int(recipe.epochs) + 1):
        loader.set_epoch(epoch)
        generator = torch.Generator().manual_seed(epoch_seed(recipe.seed, epoch, "augment"))
        for idx in loader.iter_indices():
            x, y = loader.batch(idx, generator)
            run.optimizer.zero_grad(set_to_none=True)
            for r in range(world_size):
                xr = x[r::world_size].contiguous(memory_format=torch.channels_last)
                (run.criterion(model(xr).float(), y[r::world_size]) / world_size).backward()
            run.optimizer.step()
            run.step += 1  # the run's clock, from which the next step's learning rate follows
            set_lr(run.optimizer, run.lr_at(run.step))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank of `--nproc 2` on this machine
    yield
    torch.set_num_threads(threads)


def test_two_processes_train_the_model_of_one(two_ranks, data_dir, mirror, one_thread):
    recipe = get_recipe("default", epochs=3, limit_train=1024, limit_test=500, batch_size=128, amp="off", device="cpu")
    two = load_file(str(two_ranks / checkpoints.WEIGHTS))
    # exactly: DDP's averaged gradient is the mean of the ranks' shard gradients, every step, bit for bit
    reference = _sharded_reference(recipe, data_dir, mirror)
    assert [k for k in two if not torch.equal(two[k], reference[k])] == []

    # one process on the whole global batch: the same up to float rounding (the kernels sum over 128 images instead
    # of 2 x 64), which 24 steps of AdamW and ReLU/max-pool amplify; the numbers stay close
    one = fit(recipe, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    diff = max((one.model.state_dict()[k] - two[k]).abs().max().item() for k in two)
    print(f"max |w(1 process) - w(2 processes)| after 24 steps: {diff:.3g}")
    assert diff < 0.1, diff
    m1, m2 = one.history.records, metrics(two_ranks)
    assert [m.keys() for m in m1] == [m.keys() for m in m2]
    assert [m["epoch"] for m in m2] == [1, 2, 3]
    for a, b in zip(m1, m2):
        print({k: (a[k], b[k]) for k in ("train_loss", "test_loss", "test_acc")})
        assert a["lr"] == b["lr"]
        assert abs(a["train_loss"] - b["train_loss"]) < 0.05 * a["train_loss"]
        assert abs(a["test_loss"] - b["test_loss"]) < 0.1 * a["test_loss"]
    assert abs(m1[-1]["test_acc"] - m2[-1]["test_acc"]) <= 0.02  # 10 of the 500 test images
    recipe2 = json.loads((two_ranks / "recipe.json").read_text())
    assert recipe2.pop("world_size") == 2
    assert {k: v for k, v in dataclasses.asdict(one.recipe).items() if k != "world_size"} == recipe2
    log = (two_ranks / "train.log").read_text()
    assert "2 processes (DistributedDataParallel): global batch 128, 64 per process" in log
    assert log.count("Epoch 1\n") == 1, "one writer"


def test_rank_0_alone_writes_the_tensorboard_event_files(two_ranks):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    (events,) = (two_ranks / "tensorboard").iterdir()  # one writer opened one file (another rank: another file)
    steps = [(v.tag, e.step) for e in EventFileLoader(str(events)).Load() for v in e.summary.value]
    assert [s for t, s in steps if t == "eval/accuracy"] == [8, 16, 24]  # the world's evaluations, written once


def test_a_global_batch_in_two_shards_gives_the_gradient_of_one(one_thread):
    """The first step, before training amplifies anything: the difference is float rounding alone."""
    torch.manual_seed(0)
    model = Net().to(memory_format=torch.channels_last)
    x, y = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (128,))
    F.nll_loss(model(x), y).backward()
    whole = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    for r in range(2):
        (F.nll_loss(model(x[r::2].contiguous(memory_format=torch.channels_last)), y[r::2]) / 2).backward()
    diff = max((p.grad - g).abs().max().item() for p, g in zip(model.parameters(), whole))
    print(f"max |grad(1 process) - grad(2 shards)| = {diff:.3g}")
    assert diff < 1e-6


def _workers(launcher: int) -> dict[int, int]:
    """{rank: pid} of the training processes a `--nproc` launcher started."""
    found = {}
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            rank = next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)
            if rank is not None:
                found[rank] = int(pid)
    return found


def test_a_killed_rank_is_restarted_and_the_run_resumes_bit_identically(tmp_path, two_ranks, one_thread_env):
    run = tmp_path / "killed"
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        args = [*TRAIN, *SMALL, "--nproc", "2", "--max-restarts", "1", "--out", run]
        proc = subprocess.Popen([sys.executable, "-m", "mnistlab", *args], stdout=out, stderr=err, env=one_thread_env)
    try:
        deadline = time.monotonic() + 600
        while not ((run / checkpoints.CHECKPOINT).exists() and "Epoch 2" in _text(run / "train.log")):
            assert proc.poll() is None, _text(tmp_path / "err")
            assert time.monotonic() < deadline, "no checkpoint of epoch 1 in time"
            time.sleep(0.01)
        time.sleep(0.3)  # into epoch 2 (an epoch takes a few seconds here)
        workers = _workers(proc.pid)
        assert sorted(workers) == [0, 1], workers
        assert not (run / checkpoints.WEIGHTS).exists()
        os.kill(workers[1], signal.SIGKILL)
        assert proc.wait(timeout=600) == 0, _text(tmp_path / "err")
    finally:
        if proc.poll() is None:
            proc.kill()
    log = _text(run / "train.log")
    assert f"Resuming {run} after epoch 1" in log, log
    assert [m["epoch"] for m in metrics(run)] == [1, 2, 3]
    strip = [{k: v for k, v in m.items() if not k.endswith(("_time_s", "_per_s"))} for m in metrics(run)]
    assert strip == [{k: v for k, v in m.items() if not k.endswith(("_time_s", "_per_s"))} for m in metrics(two_ranks)]
    for name in (checkpoints.WEIGHTS, checkpoints.CHECKPOINT):
        a, b = load_file(str(run / name)), load_file(str(two_ranks / name))
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{name}: differs from the uninterrupted run: {different}"


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# --------------------------------------------------------------------------------------------------------------
# Errors: one line, exit status 2, before anything starts


def _timed(*args, env, cwd) -> subprocess.CompletedProcess:
    """The command, which must end within 60 s (past it subprocess.run raises TimeoutExpired: the test fails)."""
    return run_cli(*args, env=env, cwd=cwd, timeout=600)


def test_bad_flag_with_nproc_is_one_line(tmp_path, one_thread_env):
    line = one_line_error(_timed(*TRAIN, "--nproc", "2", "--batch-size", "0", env=one_thread_env, cwd=tmp_path))
    assert "--batch-size" in line
    line = one_line_error(run_main(*TRAIN, "--nproc", "2", "--batch-size", "63", env=one_thread_env, cwd=tmp_path))
    assert "divisible" in line
    under_torchrun = dict(one_thread_env, WORLD_SIZE="2", RANK="0")
    line = one_line_error(run_main(*TRAIN, "--nproc", "2", env=under_torchrun, cwd=tmp_path))
    assert "torchrun" in line
    assert list(tmp_path.iterdir()) == []


def test_missing_data_with_nproc_is_one_line(tmp_path, one_thread_env):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "data").mkdir()
    env = dict(one_thread_env, MNISTLAB_MIRROR=str(tmp_path / "mirror"), MNISTLAB_DATA=str(tmp_path / "data"))
    line = one_line_error(_timed(*TRAIN, "--nproc", "2", "--out", tmp_path / "run", env=env, cwd=tmp_path))
    assert "mirror" in line or "MNIST" in line, line
    assert not (tmp_path / "run").exists()


def test_an_error_in_the_processes_is_one_line(tmp_path, one_thread_env):
    """A mistake only the training processes find (here: --init weights that do not exist) stops them all."""
    args = [*TRAIN, *SMALL, "--nproc", "2", "--init", tmp_path / "nothing.safetensors", "--out", tmp_path / "run"]
    line = one_line_error(_timed(*args, env=one_thread_env, cwd=tmp_path))
    assert "nothing.safetensors" in line


def test_with_sgd_two_shards_stay_within_float_rounding_of_one_batch(data_dir, mirror, one_thread):
    """What is left when the optimizer does not normalise tiny gradients (AdamW's first steps are about
    lr * sign(g)): SGD over two shards ends within float rounding of SGD over the whole batch."""
    kw = dict(epochs=2, limit_train=1024, limit_test=100, batch_size=128, amp="off", device="cpu")
    recipe = get_recipe("default", optimizer="sgd", lr=0.01, **kw)  # the seed's SGD: lr 0.01, momentum 0.9
    one = _sharded_reference(recipe, data_dir, mirror, world_size=1)
    two = _sharded_reference(recipe, data_dir, mirror, world_size=2)
    diff = max((one[k] - two[k]).abs().max().item() for k in one)
    print(f"SGD, 16 steps: max |w(1 batch) - w(2 shards)| = {diff:.3g}")
    assert diff < 1e-5, diff

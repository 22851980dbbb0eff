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

from mnistlab import checkpoints
from mnistlab.recipes import get_recipe
from mnistlab.run import NonFiniteLoss, Run
from mnistlab.rundir import RunDir

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

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

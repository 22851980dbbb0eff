import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import one_line_error, run_cli, run_main

METRIC_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_time_s", "imgs_per_s"}
RF_KEYS = {"layer", "rf_in", "n_in", "j_in", "stride", "padding", "kernel", "rf_out", "n_out", "j_out"}


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("mnistlab")
    assert script.exists(), "pip install should create the `mnistlab` console script"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "predict" in out.stdout


def test_train_evaluate_summary_end_to_end(tmp_path, env):
    run = tmp_path / "run"
    r = run_cli(
        "train", "--epochs", 2, "--limit-train", 1024, "--limit-test", 500, "--out", run, "--device", "cpu", env=env
    )
    assert r.returncode == 0, r.stderr
    assert "Train: Loss=" in r.stderr and "Batch_id=" in r.stderr  # the seed's progress bar
    assert "Test set: Average loss:" in r.stdout and "/500 (" in r.stdout
    for name in [
        "recipe.json",
        "metrics.jsonl",
        "train.log",
        "model.safetensors",
        "checkpoint.safetensors",
        "curves.png",
        "samples.png",
        "misclassified.png",
        "confusion_matrix.png",
    ]:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["name"] == "default" and recipe["epochs"] == 2 and recipe["limit_train"] == 1024
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    for m in lines:
        assert METRIC_KEYS <= m.keys()
        assert 0 <= m["train_acc"] <= 1 and 0 <= m["test_acc"] <= 1 and m["train_time_s"] > 0
    assert "recipe 'default'" in (run / "train.log").read_text()

    r = run_main("evaluate", run, "--json", "--device", "cpu", env=env)
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["test_images"] == 10_000 and len(ev["per_class_acc"]) == 10
    assert sum(map(sum, ev["confusion_matrix"])) == 10_000
    assert ev["correct"] == sum(ev["confusion_matrix"][i][i] for i in range(10))
    assert (run / "evaluation.json").is_file() and (run / "misclassified.png").is_file()
    r = run_main("evaluate", run, "--limit-test", 500, env=env)
    assert r.returncode == 0 and "Per-class accuracy" in r.stdout and "Test accuracy: " in r.stdout
    # the weights are the trained ones: evaluation on the same 500 images matches the last epoch
    assert f"{round(lines[-1]['test_acc'] * 500)}/500" in r.stdout

    r = run_main("summary", "--json", env=env)
    s = json.loads(r.stdout)
    assert s["params"] == 593_200 and len(s["receptive_field"]) == 6
    assert all(RF_KEYS <= row.keys() for row in s["receptive_field"])
    assert s["receptive_field"][-1]["rf_out"] == 16
    r = run_cli("summary", env=env)
    assert (
        "Total params: 593,200" in r.stdout
        and "| pool2 | MaxPool2d | 14 | 8 | 2 | 2 | 2 | 0 | 16 | 4 | 4 |" in r.stdout
    )


def test_missing_data_without_mirror_is_one_line(tmp_path):
    e = {k: v for k, v in os.environ.items() if k not in ("MNISTLAB_MIRROR", "MNISTLAB_DATA")}
    e["MNISTLAB_DATA"] = str(tmp_path / "empty")
    msg = one_line_error(run_main("train", "--limit-train", 10, "--out", tmp_path / "run", env=e))
    assert "--mirror" in msg and "MNISTLAB_MIRROR" in msg and str(tmp_path / "empty") in msg
    r = run_cli("--debug", "train", "--limit-train", 10, "--out", tmp_path / "run2", env=e, timeout=600)
    assert r.returncode == 2 and "Traceback" in r.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--epochs", "0"], "--epochs: must be a finite number > 0"),
        (["train", "--epochs", "-3"], "--epochs: must be a finite number > 0"),
        (["train", "--epochs", "nan"], "--epochs: must be a finite number > 0"),
        (["train", "--recipe", "seed", "--epochs", "1.5"], "epochs must be a whole number for the step schedule"),
        (["train", "--val", "0"], "--val: must be at least 1"),
        (["train", "--batch-size", "0"], "--batch-size: must be at least 1"),
        (["train", "--lr", "-1"], "--lr: must be a finite number > 0"),
        (["train", "--recipe", "fastest"], "invalid choice: 'fastest'"),
        (["train", "--device", "tpu"], "invalid choice: 'tpu'"),
        (["evaluate", "/nonexistent/run"], "is not a folder"),
        (["predict", "x.png", "--output", "out.txt"], "--output must name a .csv or a .jsonl file"),
        (["predict", "x.png", "--top-k", "0"], "--top-k: must be at least 1"),
        (["serve", "--port", "99999"], "--port: must be at most 65535"),
        (["serve", "--port", "-1"], "--port: must be at least 0"),
        (["serve", "--max-wait-ms", "nan"], "--max-wait-ms: must be a finite number >= 0"),
        (["serve", "--max-wait-ms", "-1"], "--max-wait-ms: must be a finite number >= 0"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_options_are_one_line(args, needle, env):
    assert needle in one_line_error(run_main(*args, env=env))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so --device cuda is valid here")
def test_unavailable_device_is_one_line(tmp_path, env):
    msg = one_line_error(run_cli("train", "--device", "cuda", "--limit-train", 10, "--out", tmp_path / "r", env=env))
    assert "not available" in msg


def test_existing_run_folder_is_not_overwritten(tmp_path, env):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    assert "already holds a run" in one_line_error(run_main("train", "--out", run, "--limit-train", 10, env=env))


def test_resume_refuses_a_new_length_for_a_onecycle_run(tmp_path, env):
    run = tmp_path / "run"
    r = run_cli(
        "train",
        "--epochs",
        1,
        "--limit-train",
        256,
        "--limit-test",
        100,
        "--out",
        run,
        "--quiet",
        "--no-plots",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    msg = one_line_error(run_main("train", "--resume", run, "--epochs", 3, env=env))
    assert "cannot change --epochs" in msg and "OneCycle" in msg
    assert json.loads((run / "recipe.json").read_text())["epochs"] == 1


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--lr", "0.1"], "--lr cannot be changed when resuming"),
        (["--recipe", "seed", "--batch-size", "64"], "--recipe, --batch-size cannot be changed when resuming"),
        (["--out", "elsewhere"], "--out cannot move a resumed run"),
    ],
)
def test_resume_refuses_options_it_cannot_honour(tmp_path, env, extra, needle):
    run = tmp_path / "never-created"
    args = [a if a != "elsewhere" else tmp_path / "B" for a in extra]
    assert needle in one_line_error(run_main("train", "--resume", run, *args, env=env))
    assert not run.exists() and not (tmp_path / "B").exists()


# --------------------------------------------------------------------------------------------------------------
# The help says what the defaults are, and --version what is installed


def _help_of(command: str, option: str, env) -> str:
    """The help of `mnistlab COMMAND`'s OPTION, its line breaks undone (up to the next option)."""
    r = run_main(command, "--help", env=env)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    start = text.index(f" {option} ", text.index("options:"))
    return text[start : text.find(" --", start + len(option) + 2)]


def test_version_is_the_installed_one(env):
    from importlib.metadata import version

    r = run_main("--version", env=env)
    assert r.returncode == 0 and r.stdout.strip() == f"mnistlab {version('mnistlab')}"
    r = run_cli("--version", env=env)
    assert r.returncode == 0 and r.stdout.strip() == f"mnistlab {version('mnistlab')}"


@pytest.mark.parametrize("field", ["epochs", "batch_size", "lr", "seed", "amp", "val"])
def test_train_help_shows_every_recipes_value(field, env):
    from mnistlab.recipes import RECIPES

    def shown(v):
        return "none" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)

    help = _help_of("train", "--" + field.replace("_", "-"), env)
    base = getattr(RECIPES["default"], field)
    assert f"(default: {shown(base)}" in help, help
    for name, recipe in RECIPES.items():
        if getattr(recipe, field) != base:
            assert f"{shown(getattr(recipe, field))} for " in help and name in help, (name, help)
    assert "the recipe's" not in run_main("train", "--help", env=env).stdout


def test_serve_help_shows_the_limits_the_server_gets(env):
    """Each limit's flag shows the meaning and the default serve.limits declares (a size in MB), and the flags left
    at their defaults give create_app and HttpLimits exactly the declared limits."""
    import dataclasses

    from mnistlab.cli import build_parser, serve
    from mnistlab.serve.limits import HttpLimits, Limits

    declared = {f.name: f for cls in (Limits, HttpLimits) for f in dataclasses.fields(cls)}
    for name in serve.FLAGS:
        f = declared[name]
        default = f.default / 2**20 if f.metadata["mb"] else f.default
        option = "--" + name.replace("_", "-") + ("-mb" if f.metadata["mb"] else "")
        help = _help_of("serve", option, env)
        assert f"{f.metadata['help']} (default: {default:g})" in help, name
    args = build_parser().parse_args(["serve"])
    assert serve.given_limits(args, Limits) == {
        n: v for n, v in dataclasses.asdict(Limits()).items() if n != "max_pixels"
    }
    assert HttpLimits(**serve.given_limits(args, HttpLimits)) == HttpLimits()
    given = build_parser().parse_args(["serve", "--max-body-mb", "0.5", "--max-batch", "3", "--drain-s", "2"])
    assert (
        serve.given_limits(given, Limits)["max_body"] == 2**19 and serve.given_limits(given, Limits)["max_batch"] == 3
    )
    assert serve.given_limits(given, HttpLimits)["drain_s"] == 2.0


def test_predict_help_names_the_csv_columns_the_file_has(tmp_path, env):
    import csv
    import re

    from mnistlab.infer import output

    path = tmp_path / "results.csv"
    output.write_results(path, [{"file": "a.png", "error": "not an image"}])
    header = next(csv.reader(path.open()))
    probabilities = [c for c in header if re.fullmatch(r"p\d+", c)]
    assert probabilities == [f"p{d}" for d in range(10)]
    i = header.index("p0")
    listed = ", ".join([*header[:i], "p0..p9", *header[i + 10 :]])
    assert listed in _help_of("predict", "--output", env)


# --------------------------------------------------------------------------------------------------------------
# `mnistlab train`: options -> plan -> fit, and the workers' command line


@pytest.mark.parametrize(
    "argv",
    [
        ["--seed", "0", "--epochs", "0.6", "--compile", "--quiet", "--out=-odd name", "--lr", "1e-4"],
        ["--recipe", "seed", "--resume", "r", "--device", "cpu", "--nproc", "2", "--max-restarts", "0", "--no-plots"],
        ["--dataset", "folder:/tmp/a b", "--val", "5", "--amp", "off", "--mirror", "/m", "--data-dir", "d"],
    ],
)
def test_the_workers_command_line_parses_back_to_the_same_options(argv):
    from mnistlab.cli import build_parser, launch, train
    from mnistlab.cli.args import Parser

    args = build_parser().parse_args(["train", *argv])
    parser = Parser(prog="mnistlab train")
    train.add_arguments(parser)
    again = build_parser().parse_args(["train", *launch.command_line(parser, args)])
    assert vars(again) == vars(args)
    kept = launch.command_line(parser, args, leave_out=train.LAUNCHER_ONLY)
    assert not any(a.startswith(("--nproc", "--max-restarts", "--out")) for a in kept)


def test_train_plans_a_new_run_a_resumed_one_or_a_restarted_one(tmp_path, monkeypatch):
    from mnistlab.cli import build_parser, train

    def plan(*argv):
        return train.plan(build_parser().parse_args(["train", *map(str, argv)]))

    p = plan("--epochs", 2, "--out", tmp_path / "run")
    assert p.recipe.epochs == 2 and p.run_dir == tmp_path / "run" and p.resume == {}
    p = plan("--resume", tmp_path / "run", "--epochs", 4, "--device", "cpu")
    assert p.recipe is None and p.resume == {"epochs": 4, "device": "cpu"}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.safetensors").write_bytes(b"")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # torchrun restarted the workers: continue the run
    p = plan("--epochs", 2, "--out", tmp_path / "run")
    assert p.recipe is None and p.run_dir == tmp_path / "run" and p.resume == {"device": None}

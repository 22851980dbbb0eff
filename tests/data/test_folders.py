"""Your own labelled images: folder:PATH datasets, fine-tuning with --init, class names in predict and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import one_line_error, run_cli, run_main
from PIL import Image

from mnistlab.data import folders
from mnistlab.data.download import load_tensors
from mnistlab.data.loaders import Augment
from mnistlab.errors import UserError
from mnistlab.infer.classifier import load
from mnistlab.recipes import get_recipe
from mnistlab.store.weights import bundled_weights
from mnistlab.train.run import Run
from mnistlab.train.training import fit

CLASSES = {3: "three", 5: "five", 8: "eight"}  # three digits that look alike, so a fresh head has work to do
PER_CLASS = 100


def _render(digit28: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit as a user's scan: dark ink on light paper, 3-4x larger, a little noise."""
    side = int(rng.integers(80, 112))
    ink = np.asarray(Image.fromarray(digit28).resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
    paper = 235 - ink * (200 / 255) + rng.normal(0, 4, ink.shape)
    return Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, data_dir):
    """PATH/<name>/NNN.png for three digit classes, rendered from MNIST test digits (100 per class)."""
    root = tmp_path_factory.mktemp("own-digits")
    x, y = load_tensors(False, data_dir, limit=2000)
    rng = np.random.default_rng(0)
    for digit, name in CLASSES.items():
        (root / name).mkdir()
        for i, idx in enumerate(torch.nonzero(y == digit).flatten()[:PER_CLASS].tolist()):
            _render(x[idx].numpy(), rng).save(root / name / f"{i:03d}.png")
    return root


def _recipe(root, **kw):
    base = dict(dataset=f"folder:{root}", epochs=1, batch_size=32, device="cpu", seed=3, lr=2e-3)
    return get_recipe("default", **(base | kw))


def test_split_is_deterministic_disjoint_and_near_the_share(digit_folder):
    train, test = folders.files(digit_folder, True), folders.files(digit_folder, False)
    assert not {p for p, _ in train} & {p for p, _ in test}
    assert len(train) + len(test) == 3 * PER_CLASS
    assert 0.1 < len(test) / (3 * PER_CLASS) < 0.3
    assert folders.files(digit_folder, False) == test
    assert folders.classes(digit_folder) == sorted(CLASSES.values())  # ImageFolder's order


def test_train_and_test_subfolders_are_used_as_given(tmp_path, digit_folder):
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
    src = sorted((digit_folder / "three").glob("*.png"))
    for i, f in enumerate(src[:6]):
        (tmp_path / ("train" if i < 4 else "test") / ("a" if i % 2 else "b") / f.name).write_bytes(f.read_bytes())
    assert len(folders.files(tmp_path, True)) == 4 and len(folders.files(tmp_path, False)) == 2
    (tmp_path / "test" / "c").mkdir()
    with pytest.raises(UserError, match="test has classes the training folder lacks: c"):
        folders.files(tmp_path, False)


def test_folder_images_go_through_predicts_preprocessing(digit_folder):
    x, y = folders.load_tensors(digit_folder, True, limit=5)
    first = folders.files(digit_folder, True)[0][0]
    seen = load(device="cpu").predict(first)[0].seen
    assert x.dtype == torch.uint8 and x.shape == (5, 28, 28)
    assert np.abs(x[0].numpy() / 255 - seen).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize(
    "setup, needle",
    [
        (lambda p: None, "no such folder"),
        (lambda p: p.mkdir(), "found 0 class folder"),
        (lambda p: (p / "only").mkdir(parents=True), "found 1 class folder"),
    ],
)
def test_folder_mistakes_are_one_line(tmp_path, setup, needle):
    root = tmp_path / "own"
    setup(root)
    with pytest.raises(UserError, match=needle):
        Run.create(_recipe(root), echo=False, progress=False)


def test_an_unreadable_image_is_named(tmp_path, digit_folder):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for f in sorted((digit_folder / "five").glob("*.png"))[:10]:
            (tmp_path / name / f.name).write_bytes(f.read_bytes())
    (tmp_path / "a" / "000.png").write_bytes(b"not a png")
    Image.new("L", (50, 50), 200).save(tmp_path / "b" / "001.png")  # blank paper
    with pytest.raises(UserError, match=r"of \d+ images cannot be used \(first: .*a/000.png"):
        Run.create(_recipe(tmp_path), echo=False, progress=False)


def test_fine_tuning_starts_better_than_scratch_and_replaces_the_head(digit_folder, capsys):
    scratch = fit(_recipe(digit_folder), progress=False, echo=False)
    tuned = fit(_recipe(digit_folder, init=str(bundled_weights())), progress=True, echo=True)
    assert "its 10-class head replaced by a new 3-class one" in capsys.readouterr().out
    assert tuned.model.fc2.out_features == 3 and tuned.classes == tuple(sorted(CLASSES.values()))
    acc = {name: run.history.records[-1]["test_acc"] for name, run in (("scratch", scratch), ("tuned", tuned))}
    assert acc["tuned"] >= 0.9 and acc["tuned"] > acc["scratch"] + 0.1, acc
    assert tuned.recipe.mean is not None and 0 < tuned.recipe.std < 1  # computed from the folder, recorded


def test_folder_run_trains_evaluates_and_predicts_with_class_names(tmp_path, digit_folder, env):
    out = tmp_path / "run"
    r = run_cli(
        "train", "--dataset", f"folder:{digit_folder}", "--init", bundled_weights(), "--epochs", "2",
        "--batch-size", "32", "--device", "cpu", "--quiet", "--no-plots", "--out", out, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    saved = json.loads((out / "recipe.json").read_text())
    assert saved["dataset"] == f"folder:{digit_folder}" and saved["mean"] > 0 and saved["std"] > 0
    r = run_main("evaluate", out, "--json", "--device", "cpu", env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["classes"] == ["eight", "five", "three"] and report["test_acc"] >= 0.9
    assert len(report["confusion_matrix"]) == 3
    image = folders.files(digit_folder, False)[0][0]
    results = tmp_path / "results.jsonl"
    r = run_cli("predict", image, "--model", out, "--output", results, "--show", tmp_path / "seen", env=env)
    assert r.returncode == 0, r.stderr
    row = json.loads(results.read_text())
    assert row["label"] == image.parent.name and len(row["probabilities"]) == 3
    assert r.stdout.startswith(f"{image}: {row['label']}  ({row['label']} ")  # text mode names the class too
    seen = np.asarray(Image.open(row["seen"]))
    assert seen.shape == (28, 28) and seen.max() > 200 and seen[0].max() == 0
    # an MNIST run's weights cannot be scored on a 3-class folder
    line = one_line_error(run_main("evaluate", out, "--dataset", "mnist", "--limit-test", "10", env=env))
    assert "predicts 3 classes, but mnist has 10" in line


def test_init_from_weights_that_do_not_fit_is_one_line(tmp_path, digit_folder, env):
    from safetensors.torch import save_file

    bad, small = tmp_path / "bad.safetensors", tmp_path / "small"
    save_file({"conv1.weight": torch.zeros(3, 3)}, bad)
    for name in ("three", "five"):
        (small / name).mkdir(parents=True)
        for f in sorted((digit_folder / name).glob("*.png"))[:8]:
            (small / name / f.name).write_bytes(f.read_bytes())
    line = one_line_error(
        run_cli("train", "--dataset", f"folder:{small}", "--init", bad, "--out", tmp_path / "r", env=env)
    )
    assert "cannot start from" in line and "not a mnistlab Net weights file" in line


def test_hflip_mirrors_half_the_images_and_nothing_else():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28).repeat(32, 1, 1, 1)
    out = Augment(degrees=0, scale=0, translate=0, hflip=True)(x, torch.Generator().manual_seed(0))
    same = (out - x).abs().amax((1, 2, 3)) < 1e-3
    mirrored = (out - x.flip(-1)).abs().amax((1, 2, 3)) < 1e-3
    assert bool((same ^ mirrored).all()) and 16 <= int(mirrored.sum()) <= 48


def test_links_are_walked_once_and_splits_never_share_a_file(tmp_path):
    """A class folder with links back to itself (`c0/a -> .`, `c0/b -> .`) is walked once, not for ever; a file
    reached twice (a link to it) counts once; and a test/ image that is a link to a training image is left out of
    the test split (issue 19)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "set"
    for split, n in (("train", 6), ("test", 2)):
        for c in ("c0", "c1"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(d / f"{i}.png")
    c0 = root / "train" / "c0"
    (c0 / "a").symlink_to(".", target_is_directory=True)
    (c0 / "b").symlink_to(".", target_is_directory=True)
    (c0 / "again.png").symlink_to(c0 / "0.png")
    (root / "test" / "c1" / "leak.png").symlink_to(root / "train" / "c1" / "3.png")
    train, test = folders.files(root, True), folders.files(root, False)
    assert len(train) == 12 and len(test) == 4, (train, test)
    real = {p.resolve() for p, _ in train}
    assert len(real) == 12 and not real & {p.resolve() for p, _ in test}


def test_class_folders_whose_names_are_not_utf8_are_escaped_once(tmp_path):
    """A class folder named with a byte that is not UTF-8 (`zero\\xff`) is read, and its name is valid text from
    then on (issue 19: plots, `evaluate` and the server used to fail on it)."""
    import json
    import os

    rng = np.random.default_rng(1)
    root = tmp_path / "set"
    root.mkdir()
    for raw in (b"zero\xff", b"one"):
        d = os.path.join(os.fsencode(root), raw)
        os.mkdir(d)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(
                os.fsdecode(os.path.join(d, b"%d.png" % i))
            )
    names = folders.classes(root)
    assert names == ["one", "zero\\xff"] and json.loads(json.dumps(names)) == names
    found = folders.files(root, True) + folders.files(root, False)
    assert len(found) == 20 and {c for _, c in found} == {0, 1}
    names[1].encode("utf-8")  # no surrogates left


def test_an_empty_class_folder_is_a_one_line_warning(tmp_path, digit_folder, capsys):
    """Issue 19, row 11: a class folder without images trains, but says so on stderr, once, in one line."""
    import shutil

    root = tmp_path / "set"
    shutil.copytree(digit_folder, root)
    (root / "nothing").mkdir()
    x, y = folders.load_tensors(root, True)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mnistlab: warning: the class folder 'nothing' holds no training images"], err
    assert len(x) == len(y) > 0

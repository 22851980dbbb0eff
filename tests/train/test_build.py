"""mnistlab.train.build: a recipe's loaders, optimizer and loss, built on the CPU from small synthetic data."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnistlab.errors import UserError
from mnistlab.model import Net
from mnistlab.recipes import Recipe, total_steps
from mnistlab.train.build import (
    Data,
    build_criterion,
    build_loaders,
    build_optimizer,
    load_data,
    resolve,
    use_cuda_graphs,
)

CPU = torch.device("cpu")


def tiny(n=20, hflip_ok=False) -> Data:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 10
    return Data(images, labels, images[:8], labels[:8], tuple("0123456789"), 0.5, 0.25, hflip_ok)


def test_total_steps_is_at_least_one():
    assert total_steps(Recipe(epochs=2.5), 10) == 25
    assert total_steps(Recipe(epochs=0.01), 10) == 1


def test_resolve_writes_the_normalisation_in():
    r = resolve(Recipe(), tiny())
    assert (r.mean, r.std) == (0.5, 0.25) and Recipe().mean is None


def test_build_loaders_on_the_cpu_share_the_batch_and_mirror_only_where_labels_allow():
    r = Recipe(batch_size=8, eval_batch_size=4, aug_hflip="auto")
    tr, te = build_loaders(r, tiny(), CPU)
    assert getattr(tr, "generator", None) is None  # the device loader derives its draws: no state to save
    assert len(tr) == 3 and len(te) == 2  # 20 images in 8s (the last one short), 8 in 4s
    assert tr.augment.hflip is False and build_loaders(r, tiny(hflip_ok=True), CPU)[0].augment.hflip is True
    x, y = next(iter(te))
    assert x.shape == (4, 1, 28, 28) and torch.allclose(x[0, 0], (tiny().test_images[0].float() / 255 - 0.5) / 0.25)
    half, _ = build_loaders(r, tiny(), CPU, rank=1, world_size=2)
    assert next(iter(half))[0].shape[0] == 4  # each of two ranks takes half of the global batch


def test_build_optimizer_and_scheduler():
    model = Net()
    sgd = build_optimizer(Recipe(optimizer="sgd", lr=0.1, momentum=0.5), model, CPU)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5
    adamw = build_optimizer(Recipe(lr=0.01), model, CPU)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["lr"] == 0.01
    assert torch.is_tensor(build_optimizer(Recipe(), model, CPU, graphs=True).param_groups[0]["lr"])


def test_build_criterion_follows_the_recipe():
    assert build_criterion(Recipe(label_smoothing=0)) is F.nll_loss
    smooth = build_criterion(Recipe(label_smoothing=0.1))
    assert isinstance(smooth, functools.partial) and smooth.keywords == {"label_smoothing": 0.1}
    robust = build_criterion(Recipe(augment="robust", outlier_weight=0.3))
    assert robust.keywords["weight"] == 0.3
    logp = torch.tensor([[0.0, -50.0]])
    assert float(build_criterion(Recipe(label_smoothing=0))(logp, torch.tensor([0]))) == pytest.approx(0.0)


def test_use_cuda_graphs_only_for_adamw_on_cuda_with_the_resident_pipeline():
    cuda = torch.device("cuda")  # (only its type is looked at: no GPU is needed)
    assert use_cuda_graphs(Recipe(), cuda)
    assert not use_cuda_graphs(Recipe(cuda_graphs="on"), CPU)
    for r in (Recipe(cuda_graphs="off"), Recipe(optimizer="sgd"), Recipe(compile=True), Recipe(pipeline="loader")):
        assert not use_cuda_graphs(r, cuda), r


def test_a_folder_dataset_refuses_the_loader_pipeline(tmp_path):
    with pytest.raises(UserError, match="DataLoader pipeline reads the torchvision datasets only"):
        load_data(Recipe(dataset=f"folder:{tmp_path}", pipeline="loader"))


def crop_set(path, labels) -> str:
    g = np.random.default_rng(0)
    images = g.integers(0, 256, (len(labels), 28, 28)).astype(np.uint8)
    np.savez_compressed(path, images=images, labels=np.array(labels, np.int64), meta="{}")
    return str(path)


def test_a_crop_set_joins_the_training_split_only(tmp_path, data_dir, mirror):
    crops = crop_set(tmp_path / "c.npz", [3, -1, 7])
    r = Recipe(crops=crops, augment="outliers", val=100, limit_train=50)
    d = load_data(r, data_dir, str(mirror))
    plain = load_data(Recipe(val=100, limit_train=50), data_dir, str(mirror))
    assert len(d.train_labels) == 53 and d.train_labels[-3:].tolist() == [3, -1, 7]
    assert torch.equal(d.train_images[:50], plain.train_images) and torch.equal(d.test_images, plain.test_images)
    assert torch.equal(d.train_images[-3:], torch.from_numpy(np.load(crops)["images"]))
    assert len(load_data(r, data_dir, str(mirror), train=False).train_labels) == 50  # evaluation: no crops read
    # the not-digit trains as the robust augmentation's own do: a uniform target, a finite loss
    tr, _ = build_loaders(dataclasses.replace(r, batch_size=64, outliers=0.0), d, CPU)
    x, y = next(iter(tr))
    assert (y == -1).sum() == 1 and torch.isfinite(build_criterion(r)(Net()(x), y))


def test_a_crop_set_is_refused_where_it_cannot_train(tmp_path, data_dir, mirror):
    with_not_digits = crop_set(tmp_path / "c.npz", [1, -1])
    with pytest.raises(UserError, match="holds not-digits: train on it with augment robust or outliers"):
        load_data(Recipe(crops=with_not_digits, val=100, limit_train=50), data_dir, str(mirror))
    digits_only = crop_set(tmp_path / "d.npz", [1, 2])  # the plain affine recipe can train on digits alone
    assert len(load_data(Recipe(crops=digits_only, val=100, limit_train=50), data_dir, str(mirror)).train_labels) == 52
    with pytest.raises(UserError, match="resident pipeline"):
        load_data(Recipe(crops=digits_only, pipeline="loader"), data_dir, str(mirror))
    for bad in (crop_set(tmp_path / "e.npz", [1, 12]), str(tmp_path / "missing.npz")):
        with pytest.raises(UserError, match="crop set"):
            load_data(Recipe(crops=bad, augment="outliers", val=100, limit_train=50), data_dir, str(mirror))

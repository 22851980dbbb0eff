"""mnistlab.build: a recipe's loaders, optimizer and loss, built on the CPU from small synthetic data."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from mnistlab.build import (
    Data,
    build_criterion,
    build_loaders,
    build_optimizer,
    load_data,
    resolve,
    use_cuda_graphs,
)
from mnistlab.errors import UserError
from mnistlab.model import Net
from mnistlab.recipes import Recipe, total_steps

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
    tr, te, gen = build_loaders(r, tiny(), CPU)
    assert gen is None and len(tr) == 3 and len(te) == 2  # 20 images in 8s (the last one short), 8 in 4s
    assert tr.augment.hflip is False and build_loaders(r, tiny(hflip_ok=True), CPU)[0].augment.hflip is True
    x, y = next(iter(te))
    assert x.shape == (4, 1, 28, 28) and torch.allclose(x[0, 0], (tiny().test_images[0].float() / 255 - 0.5) / 0.25)
    half, _, _ = build_loaders(r, tiny(), CPU, rank=1, world_size=2)
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

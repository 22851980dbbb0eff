"""The two batching paths: the epoch sampler, the device-resident loader with its augmentation, the seed loader."""

import pytest
import torch

from mnistlab.data import download as data
from mnistlab.data.loaders import Augment, DeviceLoader, EpochSampler, epoch_seed, seed_loader, seed_transforms


@pytest.mark.parametrize("world_size", [1, 3, 7])
def test_sampler_visits_every_image_once_per_epoch(world_size):
    n = 1000
    shards = [EpochSampler(n, seed=5, rank=r, world_size=world_size) for r in range(world_size)]
    for epoch in (1, 2):
        got = torch.cat([s.indices(epoch) for s in shards])
        assert len(got) == shards[0].num_samples * world_size
        assert set(got.tolist()) == set(range(n))
        if world_size == 1:
            assert sorted(got.tolist()) == list(range(n))
    assert not torch.equal(shards[0].indices(1), shards[0].indices(2))
    assert torch.equal(shards[0].indices(3), EpochSampler(n, seed=5, rank=0, world_size=world_size).indices(3))


def test_device_loader_covers_the_data_once(data_dir):
    x, y = data.load_tensors(True, data_dir, limit=1000)
    loader = DeviceLoader(x, y, 64, "cpu", shuffle=True, seed=3)
    loader.set_epoch(1)
    seen_x, seen_y = zip(*loader)
    assert len(loader) == 16 and len(seen_x) == 16
    allx, ally = torch.cat(seen_x), torch.cat(seen_y)
    assert len(ally) == 1000
    assert torch.equal(torch.bincount(ally, minlength=10), torch.bincount(y, minlength=10))
    normalised = (x.float() / 255 - 0.1307) / 0.3081
    # every image appears exactly once: compare sorted per-image checksums
    torch.testing.assert_close(allx.flatten(1).sum(1).sort().values, normalised.flatten(1).sum(1).sort().values)


def test_augmentation_keeps_labels_and_value_range(data_dir):
    x, y = data.load_tensors(True, data_dir, limit=512)
    plain = DeviceLoader(x, y, 128, "cpu", shuffle=True, seed=1)
    aug = DeviceLoader(x, y, 128, "cpu", shuffle=True, seed=1, augment=Augment())
    lo, hi = plain.images.min(), plain.images.max()
    for (xa, ya), (xp, yp) in zip(aug, plain):
        assert torch.equal(ya, yp)  # same order, labels untouched
        assert xa.min() >= lo - 1e-5 and xa.max() <= hi + 1e-5
        assert not torch.equal(xa, xp)  # it did move the pixels
        # the ink stays: mass changes by scaling (+-10% per axis) but stays in the same range
        ink_a, ink_p = (xa - lo).sum((1, 2, 3)), (xp - lo).sum((1, 2, 3))
        assert ((ink_a / ink_p) > 0.7).all() and ((ink_a / ink_p) < 1.4).all()


def test_zero_augmentation_is_identity(data_dir):
    x, _ = data.load_tensors(False, data_dir, limit=16)
    xf = (x.float() / 255).unsqueeze(1)
    torch.testing.assert_close(Augment(0, 0, 0)(xf), xf, atol=1e-5, rtol=0)


def test_augmentation_is_reproducible_per_epoch(data_dir):
    x, y = data.load_tensors(True, data_dir, limit=256)
    a = DeviceLoader(x, y, 64, "cpu", shuffle=True, seed=9, augment=Augment())
    b = DeviceLoader(x, y, 64, "cpu", shuffle=True, seed=9, augment=Augment())
    a.set_epoch(2)
    b.set_epoch(2)
    for (xa, _), (xb, _) in zip(a, b):
        assert torch.equal(xa, xb)


def test_seed_loader_matches_the_seed_transforms(data_dir):
    loader = seed_loader(True, 32, data_dir=data_dir, limit=64, num_workers=0)
    xb, yb = next(iter(loader))
    assert xb.shape == (32, 1, 28, 28) and xb.dtype == torch.float32 and yb.shape == (32,)
    names = [type(t).__name__ for t in seed_transforms(True).transforms]
    assert names == ["RandomApply", "Resize", "RandomRotation", "ToImage", "ToDtype", "Normalize"]
    test_x, _ = next(iter(seed_loader(False, 8, data_dir=data_dir, limit=8, num_workers=0)))
    ref = (data.load_tensors(False, data_dir, limit=8)[0].float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(test_x.squeeze(1), ref)


def test_epoch_seeds_differ_by_epoch_and_stream():
    seeds = {epoch_seed(1, e, s) for e in range(1, 50) for s in ("order", "augment")}
    assert len(seeds) == 98 and epoch_seed(1, 3, "order") == epoch_seed(1, 3, "order")

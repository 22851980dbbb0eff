"""runtime: devices, autocast dtypes, per-epoch seeds and the set-up of a training process."""

import pytest
import torch

from mnistlab import distributed, runtime
from mnistlab.errors import UserError
from mnistlab.recipes import get_recipe


def test_epoch_seeds_differ_by_epoch_and_stream():
    seeds = {runtime.epoch_seed(1, e, s) for e in range(1, 50) for s in ("order", "augment")}
    assert len(seeds) == 98 and runtime.epoch_seed(1, 3, "order") == runtime.epoch_seed(1, 3, "order")


def test_devices_and_dtypes():
    cpu = torch.device("cpu")
    assert runtime.get_device("cpu") == cpu and runtime.amp_dtype("off", cpu) is None
    assert runtime.amp_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        runtime.get_device("tpu")


def test_place_sets_up_a_lone_cpu_process():
    device, dtype = runtime.place(get_recipe("seed", device="cpu"), distributed.World())
    assert device == torch.device("cpu") and dtype is None  # the seed's fp32

"""runtime: autocast dtypes and the set-up of a training process."""

import torch

from mnistlab.recipes import get_recipe
from mnistlab.train import distributed, runtime


def test_amp_dtypes():
    cpu = torch.device("cpu")
    assert runtime.amp_dtype("off", cpu) is None and runtime.amp_dtype("bf16", cpu) == torch.bfloat16


def test_place_sets_up_a_lone_cpu_process():
    device, dtype = runtime.place(get_recipe("seed", device="cpu"), distributed.World())
    assert device == torch.device("cpu") and dtype is None  # the seed's fp32

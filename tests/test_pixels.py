"""mnistlab.pixels: MNIST's normalisation in one place, the same on arrays and tensors, and no torch imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from mnistlab import datasets
from mnistlab.pixels import MEAN, STD, is_tensor, normalize


def test_normalize_is_the_same_on_arrays_and_tensors():
    x = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    a, t = normalize(x), normalize(torch.from_numpy(x.copy()))
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and isinstance(t, torch.Tensor)
    assert np.allclose(a, t.numpy(), atol=1e-6) and np.isclose(a[0, 0], -MEAN / STD)


def test_the_constants_have_one_place_and_datasets_gives_the_same():
    assert (datasets.MEAN, datasets.STD, datasets.normalize) == (MEAN, STD, normalize)
    assert datasets.get("mnist").mean == MEAN and datasets.get("mnist").std == STD


def test_is_tensor_without_importing_torch():
    assert is_tensor(torch.zeros(1)) and not is_tensor(np.zeros(1)) and not is_tensor([0.0])
    code = "import sys, numpy; from mnistlab.pixels import is_tensor; "
    code += "print(is_tensor(numpy.zeros(1)), 'torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], r.stderr

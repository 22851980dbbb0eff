"""device: a device by name; one that is not there, or not a device, is one line."""

import pytest
import torch

from mnistlab.device import get_device
from mnistlab.errors import UserError


def test_cpu_and_auto():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("auto").type in ("cpu", "cuda", "mps")


def test_unknown_and_missing_devices_are_one_line():
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            get_device("cuda:0")

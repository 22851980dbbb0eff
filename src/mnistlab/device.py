"""The device a network runs on, by name: 'auto', 'cpu', 'cuda[:N]' or 'mps' (a mistake is one line)."""

from __future__ import annotations

import torch

from mnistlab.errors import UserError


def get_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; asking for an unavailable device is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} is not available: this torch sees no CUDA GPU (use --device cpu)")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("device 'mps' is not available on this machine (use --device cpu)")
        return torch.device("mps")
    raise UserError(f"unknown device {name!r}; choose from auto, cpu, cuda, mps")

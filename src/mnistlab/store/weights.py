"""Trained weights on disk: the bundled file, reading a run folder's or a .safetensors file's weights safely (no
pickle), loading them into a `Net`, and starting a new run from them (`--init`); training and the API share it."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from mnistlab.errors import UserError, one_line
from mnistlab.model import Net
from mnistlab.store.bundled import BUNDLED, bundled_weights
from mnistlab.store.checkpoints import CHECKPOINT, WEIGHTS, model_part, read_safetensors

__all__ = ["BUNDLED", "bundled_weights", "load_model", "read_weights", "run_weights", "transfer_weights"]


def run_weights(folder: Path) -> Path:
    """A run folder's weights: the final ones if the run finished, else the model part of its last checkpoint."""
    for name in (WEIGHTS, CHECKPOINT):
        if (folder / name).is_file():
            return folder / name
    raise UserError(
        f"{folder} has no {WEIGHTS} or {CHECKPOINT}; pass a run folder written by training "
        "or a .safetensors weights file"
    )


def read_weights(source: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], dict, Path]:
    """(model tensors, metadata, the file read) from a run folder, a .safetensors file, or None (bundled).

    A folder gives its model.safetensors, else the model part of its checkpoint. Files are read with safetensors
    only: a pickle (or anything else) is refused with a `UserError`, never unpickled."""
    path = bundled_weights() if source is None else Path(source)
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a run folder or a .safetensors weights file")
    file = run_weights(path) if path.is_dir() else path
    tensors, meta = read_safetensors(file)
    return model_part(tensors) or tensors, meta, file  # a training checkpoint: its model's tensors


def _problems(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str:
    """What keeps `tensors` from loading into a model whose state dict is `expected` ("" if nothing)."""
    problems = {
        "missing": [k for k in expected if k not in tensors],
        "unexpected": [k for k in tensors if k not in expected],
        "wrongly shaped": [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape],
        "non-float": [k for k, t in tensors.items() if k in expected and not t.is_floating_point()],
    }
    return ", ".join(f"{len(v)} {what}" for what, v in problems.items() if v)


def _check_finite(tensors: dict[str, torch.Tensor], file: Path) -> None:
    if not all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point()):
        raise UserError(f"{file} holds NaN or infinite weights; it cannot predict anything")


def load_model(source: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> tuple[Net, dict]:
    """(Net in eval mode on `device`, metadata) from a run folder, a .safetensors file, or None (bundled).

    The class count is read from the weights. Weights that do not fit the network (missing, extra or wrongly
    shaped tensors, non-float dtypes, NaN or infinite values) are refused with a `UserError`.
    """
    tensors, meta, file = read_weights(source)
    head = tensors.get("fc2.weight")
    model = Net(num_classes=head.shape[0] if head is not None and head.ndim == 2 and head.shape[0] >= 1 else 10)
    why = _problems(tensors, model.state_dict())
    if why:
        raise UserError(f"{file} is not a mnistlab Net weights file ({why} tensors)")
    _check_finite(tensors, file)
    model.load_state_dict({k: t.float() for k, t in tensors.items()}, strict=True)
    try:
        model = model.to(torch.device(device))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise UserError(f"cannot use device {device!r}: {one_line(e)}") from None
    return model.eval(), meta


def transfer_weights(model: nn.Module, source: str | os.PathLike) -> str:
    """Load trained weights from `source` into `model` to fine-tune it; a class head (fc2) of another size is left
    as initialised, to be learnt. Returns a line saying what was loaded."""
    tensors, _, file = read_weights(source)
    expected = model.state_dict()
    head = ("fc2.weight", "fc2.bias")
    new_head = all(k in tensors and k in expected and tensors[k].shape != expected[k].shape for k in head)
    sizes = (tensors["fc2.bias"].numel(), expected["fc2.bias"].numel()) if new_head else None
    if new_head:
        tensors = {k: t for k, t in tensors.items() if k not in head}
        expected = {k: t for k, t in expected.items() if k not in head}
    why = _problems(tensors, expected)
    if why:
        raise UserError(f"cannot start from {file}: it is not a mnistlab Net weights file ({why} tensors)")
    _check_finite(tensors, file)
    with torch.no_grad():
        for k, t in tensors.items():
            model.state_dict()[k].copy_(t)
    if sizes:
        return f"Starting from {file}; its {sizes[0]}-class head replaced by a new {sizes[1]}-class one"
    return f"Starting from {file}"

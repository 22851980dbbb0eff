"""Predict digits in the user's own image files with trained weights (safetensors only, never a pickle)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn as nn

from mnistlab.checkpoints import CHECKPOINT, WEIGHTS, load_weights
from mnistlab.errors import UserError
from mnistlab.model import get_model
from mnistlab.preprocess import open_image, preprocess

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_BATCH = 256


def _weights_file(path: Path) -> Path:
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a run folder or a .safetensors weights file")
    if not path.is_dir():
        return path
    for name in (WEIGHTS, CHECKPOINT):
        if (path / name).is_file():
            return path / name
    raise UserError(
        f"{path} has no {WEIGHTS} or {CHECKPOINT}; pass a run folder written by training or a .safetensors weights file"
    )


def _model_name(meta: dict) -> str:
    name = meta.get("model")
    recipe = meta.get("recipe")
    if not isinstance(name, str) and isinstance(recipe, dict):  # a training checkpoint keeps the whole recipe
        name = recipe.get("model")
    return name if isinstance(name, str) else "net"


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode on `device`, metadata) from a run folder or a .safetensors weights file.

    A folder gives its `model.safetensors`, else the model part of its `checkpoint.safetensors`. Files are read
    with safetensors only: a pickle (or anything else) is refused with a `UserError`, never unpickled.
    """
    file = _weights_file(Path(path))
    tensors, meta = load_weights(file)  # UserError for anything that is not a safetensors file
    if any(k.startswith("model/") for k in tensors):  # a training checkpoint: keep the model's tensors
        tensors = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    name = _model_name(meta)
    try:
        model = get_model(name)
    except ValueError as e:
        raise UserError(f"{file}: {e}") from None
    kind = type(model).__name__
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        why = ", ".join(
            f"{len(v)} {what}"
            for v, what in ((missing, "missing"), (unexpected, "unexpected"), (wrong, "wrongly shaped"))
            if v
        )
        raise UserError(f"{file} is not a mnistlab {kind} weights file ({why} tensors)")
    try:
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError, TypeError) as e:
        raise UserError(f"{file} is not a mnistlab {kind} weights file ({' '.join(str(e).split())[:200]})") from None
    try:
        model = model.to(torch.device(device))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise UserError(f"cannot use device {device!r}: {' '.join(str(e).split())}") from None
    return model.eval(), meta


def iter_image_files(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Files as given, folders expanded (not recursively, sorted) to their image files (`IMAGE_EXTENSIONS`)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise UserError(f"{p} does not exist")
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
            if not found:
                raise UserError(f"{p} holds no images (looked for {' '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise UserError("no images given")
    return files


def _check_top_k(top_k) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 10:
        raise UserError(f"top-k must be a whole number from 1 to 10, not {top_k!r}")
    return top_k


def predict(model: nn.Module, images: list[Path], top_k: int = 3, device: str | torch.device = "cpu") -> list[dict]:
    """One result per image, in order: `{"file", "prediction", "top_k": [{"digit", "probability"}, ...]}`.

    An image that cannot be used (no ink, unreadable, too large) gives `{"file", "error"}` instead, so one bad
    file does not stop the others. Probabilities are the exponentials of the model's log-softmax output.
    """
    top_k = _check_top_k(top_k)
    results: list[dict] = []
    inputs: list[torch.Tensor] = []
    slots: list[int] = []
    for path in images:
        try:
            x = preprocess(open_image(path), name=str(path))
        except UserError as e:  # NoInkError included
            results.append({"file": str(path), "error": str(e)})
            continue
        slots.append(len(results))
        results.append({"file": str(path)})
        inputs.append(x)
    if not inputs:
        return results
    try:
        dtype = next(model.parameters()).dtype
    except StopIteration:
        dtype = torch.float32
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), _BATCH):
            batch = torch.stack(inputs[start : start + _BATCH]).to(device=device, dtype=dtype)
            probs = model(batch).float().exp().cpu()
            p, d = probs.topk(top_k, dim=1)
            for i, slot in enumerate(slots[start : start + _BATCH]):
                ranked = [{"digit": int(d[i, j]), "probability": float(p[i, j])} for j in range(top_k)]
                results[slot].update(prediction=ranked[0]["digit"], top_k=ranked)
    return results


def format_result(d: dict) -> str:
    """One human line: `digit.png: 7  (7 98.1%, 1 1.2%, 2 0.3%)` or `blank.png: error: no ink found ...`."""
    if "error" in d:
        return f"{d['file']}: error: {d['error']}"
    ranked = ", ".join(f"{r['digit']} {100 * r['probability']:.1f}%" for r in d["top_k"])
    return f"{d['file']}: {d['prediction']}  ({ranked})"

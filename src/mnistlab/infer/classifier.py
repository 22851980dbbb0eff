"""The Python API: `load` weights (bundled, a run folder, a .safetensors or a .onnx file) into a `Classifier` of digits.

A `Classifier` on onnxruntime (`engine == "onnx"`) imports no torch, nor does this module: torch is imported where
a torch network is loaded or run."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
from PIL import Image

from mnistlab.calibration import TEMPERATURES, calibrated, digit_score
from mnistlab.errors import UserError
from mnistlab.images.decode import IMAGE_EXTENSIONS
from mnistlab.images.preprocess import Candidate, candidates
from mnistlab.infer import engine as engines
from mnistlab.infer.onnx_check import MAX_CLASSES
from mnistlab.infer.onnx_net import OnnxNet
from mnistlab.pixels import MEAN, STD, is_tensor, normalize
from mnistlab.recipe_schema import check_setting

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

_BATCH = 256  # images per forward pass
PREFER = 0.05  # a candidate wins over later (less inclusive) ones unless their digit score is this much higher


@dataclass
class Prediction:
    """What the classifier read in one image."""

    digit: int  # the most likely class: the digit itself for digit datasets, else the class's index
    probabilities: list[float]  # one value per class (10 for digits), summing to 1
    top_k: list[tuple[int, float]]  # the k most likely (class, probability), most likely first
    source: str | None = None  # the file the image came from, if it came from one
    label: str = ""  # the most likely class's name: "7", or "Sneaker", "a", ... for datasets with named classes
    seen: np.ndarray | None = field(default=None, repr=False)  # the 28x28 image the network saw, floats in [0, 1]
    digit_score: float = 1.0  # in [0, 1], higher is more digit-like: the top probability rescaled (calibration.py)
    is_digit: bool = True  # digit_score at least the threshold stored with the weights ("not a digit" below it)
    candidate: str = ""  # which reading of the image won (preprocess.Candidate.kind): "all ink", "as given", ...


class Classifier:
    """A trained Net with MNIST's preprocessing: `predict` reads digits (or the model's classes) in images of any kind.

    `model` is the `nn.Module` (an `onnx_net.OnnxNet` on onnxruntime; `engine` says which: "torch" or "onnx");
    `card` the metadata stored with the weights (recipe, dataset, classes, test accuracy, date, ...); `classes` the
    class names in output order ("0".."9", ...).
    """

    def __init__(
        self,
        model: nn.Module | OnnxNet,
        device: torch.device | str,
        card: dict | None = None,
        source: str | None = None,
    ):
        self.model: Any = model  # typed loosely: serve, Explain and unit_geometry take it as the nn.Module it is there
        self.device, self.card, self.source = device, card or {}, source
        self.engine = "onnx" if isinstance(model, OnnxNet) else "torch"
        if isinstance(model, OnnxNet):
            n = model.num_classes
        else:
            import torch.nn as nn  # already imported: the model is a torch module

            head = model.fc2
            if not isinstance(head, nn.Linear):
                raise TypeError(f"a Classifier's model needs a Linear class head, fc2, not {type(head).__name__}")
            n = head.out_features
        if n > MAX_CLASSES:
            raise UserError(f"{self.named} has {n:,} classes; a mnistlab model has at most {MAX_CLASSES:,}")
        self.classes = _class_names(self.card.get("classes"), n)
        self.temperature = _temperature(self.card.get("temperature"), self.named)  # fitted on held-out digits
        self.threshold = _number(self.card.get("digit_threshold"), 0.0)  # none stored: every image is a digit
        self.mean, self.std = _normalisation(self.card.get("recipe"), self.named)

    @property
    def named(self) -> str:
        """The model as a message names it: its file, or "the bundled model"."""
        return {None: "the model", "bundled": "the bundled model"}.get(self.source, str(self.source))

    @property
    def reads_digits(self) -> bool:
        """Whether its classes are the ten digits, "0".."9" in order: only then can it read numbers with the digit
        finder (`mnistlab.reading`)."""
        return self.classes == [str(d) for d in range(10)]

    def __repr__(self) -> str:
        return f"Classifier(source={self.source!r}, device={str(self.device)!r}, engine={self.engine!r})"

    def predict(self, images, top_k: int = 3) -> list[Prediction]:
        """One `Prediction` per image, in order, for one image or a list of them.

        An image is a path, a `PIL.Image`, a NumPy array (HxW or HxWxC; uint8, or floats in [0, 1]), a torch
        tensor, or the encoded bytes of an image file. Each is prepared the way MNIST was made (see
        `mnistlab.images.preprocess`); a 28x28 white-on-black digit is used as it is. An image that cannot be used
        (no ink, unreadable, too large) raises a `UserError` naming it.
        """
        results: list[Prediction] = []
        for r in self.predict_each(images, top_k):
            if isinstance(r, UserError):
                raise r
            results.append(r)
        return results

    def predict_each(self, images, top_k: int = 3) -> list[Prediction | UserError]:
        """Like `predict`, but an image that cannot be used gives its `UserError` in its place, not a raise.

        Every image's candidate readings (`preprocess.candidates`) are scored in shared forward passes; each image
        keeps the candidate with the best digit score, less its `doubt` (of those within `PREFER` of it, the
        first: the most inclusive)."""
        top_k = _check_top_k(top_k)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        failed: dict[int, UserError] = {}
        ready: list[tuple[int, list[Candidate], str | None]] = []
        for i, item in enumerate(items):
            source = str(item) if isinstance(item, (str, os.PathLike)) else None
            try:
                found = candidates(item, name=source or _describe(item, i, len(items)))
            except UserError as e:
                failed[i] = e
                continue
            ready.append((i, found, source))
        flat = [c.seen for _, found, _ in ready for c in found]
        batches = [self.probabilities(np.stack(flat[s : s + _BATCH])) for s in range(0, len(flat), _BATCH)]
        probs = np.concatenate([np.asarray(b) for b in batches]) if batches else np.empty((0, len(self.classes)))
        read: dict[int, Prediction] = {}
        at = 0
        for i, found, source in ready:
            read[i] = self.prediction(probs[at : at + len(found)], found, top_k, source)
            at += len(found)
        return [read[i] if i in read else failed[i] for i in range(len(items))]

    def prediction(self, probs, found: list[Candidate], top_k: int = 3, source: str | None = None) -> Prediction:
        """The `Prediction` of one image from its candidates' calibrated probabilities (K x classes; an array, or a
        tensor on the CPU as `probabilities` gives it): the same NumPy arithmetic whichever engine made them."""
        probs = np.asarray(probs, dtype=np.float32)
        scores = digit_score(probs)
        ranked_by = scores - np.array([c.doubt for c in found], dtype=np.float32)  # (a reading on a weaker premise)
        best = int(np.flatnonzero(ranked_by >= ranked_by.max() - PREFER)[0])  # the first (most inclusive) of the best
        row = probs[best]
        order = np.argsort(-row, kind="stable")[: min(top_k, row.shape[0])]  # ties: the lower class first
        ranked = [(int(d), float(row[d])) for d in order]
        score = float(scores[best])
        return Prediction(
            ranked[0][0], row.tolist(), ranked, source, self.classes[ranked[0][0]], found[best].seen,
            score, score >= self.threshold, found[best].kind,
        )  # fmt: skip

    def probabilities(self, seen: np.ndarray):
        """The calibrated class probabilities (N x classes, float32 on the CPU) of N prepared images (N x 28 x 28
        floats in [0, 1], as `prepare` makes them), in one forward pass, at the weights' temperature: a torch
        tensor on the torch engine, a NumPy array on onnxruntime.

        A model that gives NaN or infinite probabilities is a `UserError` (`load` checks that on `probe()`)."""
        if isinstance(self.model, OnnxNet):  # raw pixels in, its normalisation in the graph
            probs = np.exp(calibrated(self.model(seen), self.temperature))
            finite = bool(np.isfinite(probs).all())
        else:
            import torch

            with torch.inference_mode():
                probs = calibrated(self.model(self.inputs(seen)).float(), self.temperature).exp().cpu()
            finite = bool(torch.isfinite(probs).all())
        if not finite:
            raise UserError(
                f"{self.named} gives NaN or infinite outputs, so it cannot predict anything (its training diverged, "
                "or its card's temperature, mean or std is extreme)"
            )
        return probs

    def inputs(self, seen: np.ndarray) -> torch.Tensor:
        """The torch network's input for N prepared images (N x 28 x 28 floats in [0, 1]): normalised as in
        training, N x 1 x 28 x 28, on the model's device and in its dtype (an OnnxNet takes `seen` itself)."""
        if isinstance(self.model, OnnxNet):
            raise TypeError("a Classifier on onnxruntime has no torch inputs; load it with engine='torch'")
        import torch

        param = next(self.model.parameters())
        x = torch.from_numpy(np.ascontiguousarray(seen, dtype=np.float32)).unsqueeze(1)
        return normalize(x, self.mean, self.std).to(device=param.device, dtype=param.dtype)


def load(source: str | os.PathLike | None = None, device: str = "auto", engine: str | None = None) -> Classifier:
    """A `Classifier` from a run folder, a .safetensors or a .onnx file; `None` means the weights bundled with mnistlab.

    `engine`: "torch" (any weights, any device), "onnx" (onnxruntime on the CPU, no torch imported: the bundled
    model's ONNX copy or a .onnx file), "auto" (onnx where it can, else torch; see `mnistlab.infer.engine`), or None:
    onnx for a .onnx file, else torch (the `nn.Module` in `.model`, for explanations and export).

    >>> import mnistlab
    >>> mnistlab.load().predict("examples/digits/seven_pen.png")[0].digit
    7
    """
    chosen, file = engines.choose(source, device, engine)
    if chosen == "onnx" and file is not None:  # (choose always names the ONNX file it picks)
        net = OnnxNet(file, device, check=source is not None)
        classifier = Classifier(net, "cpu", net.card, "bundled" if source is None else str(source))
    else:
        from mnistlab.device import get_device
        from mnistlab.store.weights import load_model

        dev = get_device(device)
        model, meta = load_model(source, dev)
        classifier = Classifier(model, dev, meta, "bundled" if source is None else str(source))
    classifier.probabilities(probe())  # a model that gives NaN or infinite outputs is refused here, at load
    return classifier


def probe() -> np.ndarray:
    """Three prepared images every model's outputs must be finite on: blank, all ink, and a stroke."""
    images = np.zeros((3, 28, 28), np.float32)
    images[1] = 1.0
    images[2, 4:24, 13:15] = 1.0
    return images


def image_files(paths) -> list[Path]:
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


def _is_real(v: object) -> TypeGuard[int | float]:
    """Whether a model card's value is a number (an int or a float, not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v: object, default: float) -> float:
    """A finite number from a model card, else `default` (older weights have no calibration)."""
    if _is_real(v) and math.isfinite(v):
        return float(v)
    return default


def _class_names(names: object, n: int) -> list[str]:
    """A model card's `n` class names, else "0", "1", ... (older weights name none)."""
    if isinstance(names, list) and len(names) == n and all(isinstance(c, str) for c in names):
        return names
    return [str(i) for i in range(n)]


def _temperature(v: object, named: str) -> float:
    """A model card's temperature; 1 where it holds none (older weights have no calibration). A number outside
    TEMPERATURES (where every fitted one lies) is a damaged card: a `UserError`."""
    if not _is_real(v):
        return 1.0
    lo, hi = TEMPERATURES
    if not lo <= v <= hi:  # (NaN too)
        raise UserError(f"{named}'s card has temperature {v!r}; a fitted one lies in [{lo:g}, {hi:g}]")
    return float(v)


def _normalisation(recipe: object, named: str) -> tuple[float, float]:
    """The (mean, std) a model card's recipe trained with, else MNIST's (older weights record none). Values a
    recipe could not hold (recipe_schema's ranges) are a damaged card: a `UserError`."""
    if not isinstance(recipe, dict):
        return MEAN, STD
    mean, std = recipe.get("mean"), recipe.get("std")
    for key, v in (("mean", mean), ("std", std)):
        why = check_setting(key, v)
        if why:
            raise UserError(f"{named}'s card: its recipe's {key} {why}")
    return (float(mean), float(std)) if mean is not None and std is not None else (MEAN, STD)


def _check_top_k(top_k) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 10:
        raise UserError(f"top-k must be a whole number from 1 to 10, not {top_k!r}")
    return top_k


def _describe(item, i: int, n: int) -> str:
    kind = {Image.Image: "PIL image", np.ndarray: "array"}
    what = next((name for t, name in kind.items() if isinstance(item, t)), "tensor" if is_tensor(item) else "image")
    if isinstance(item, (bytes, bytearray, memoryview)):
        what = "image bytes"
    return f"the {what}" if n == 1 else f"image {i} (the {what})"

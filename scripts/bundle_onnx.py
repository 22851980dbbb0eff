"""Write the bundled model's and finder's ONNX copies from their safetensors: the files `--engine onnx` (and auto)
and a Reader on onnxruntime read.

    python scripts/bundle_onnx.py            # writes src/mnistlab/weights/mnist-default.onnx and finder.onnx
    python scripts/bundle_onnx.py finder     # only finder.onnx (model: only mnist-default.onnx)
    python scripts/bundle_weights.py         # retrains the bundled weights, then writes both files

The model's copy is `mnistlab export --onnx` of `mnistlab.load()`: the normalisation and the model card inside,
opset 17. tests/test_bundled_onnx.py checks it against the safetensors (log-probabilities within 1e-4 on 1,000
MNIST test images, the same digits, the same card), so run this after every change of the bundled weights. The
finder's copy is `export.onnx_export.export_finder` of `load_finder()`, its card inside
(scripts/train_finder.py --bundle writes it too); tests/reading/test_finder_onnx.py checks its outputs against
torch's (within 1e-4).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mnistlab.store.bundled import BUNDLED_ONNX

DEST = Path(__file__).resolve().parents[1] / "src" / "mnistlab" / BUNDLED_ONNX


def write_onnx(weights: Path | None = None, dest: Path = DEST) -> Path:
    """`weights` (None: the bundled safetensors) exported as ONNX to `dest`."""
    from mnistlab.export.onnx_export import export_onnx
    from mnistlab.infer.classifier import load

    return export_onnx(load(weights, device="cpu", engine="torch"), dest)


def write_finder_onnx(weights: Path | None = None, dest: Path | None = None) -> Path:
    """The finder's `weights` (None: the bundled safetensors) exported as ONNX to `dest` (None: the bundled
    finder.onnx), with the card stored in the safetensors."""
    from mnistlab.export.onnx_export import export_finder
    from mnistlab.reading.read import bundled_finder_onnx, load_finder

    model, card = load_finder(weights)
    return export_finder(model, card, dest or bundled_finder_onnx())


if __name__ == "__main__":
    which = sys.argv[1:] or ["model", "finder"]
    if not set(which) <= {"model", "finder"}:
        sys.exit(f"usage: {sys.argv[0]} [model] [finder]")
    for name in which:
        print(f"wrote {write_onnx() if name == 'model' else write_finder_onnx()}")

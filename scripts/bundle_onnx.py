"""Write the bundled model's ONNX copy from the bundled safetensors: the file `--engine onnx` (and auto) reads.

    python scripts/bundle_onnx.py            # writes src/mnistlab/weights/mnist-default.onnx
    python scripts/bundle_weights.py         # retrains the bundled weights, then writes both files

The copy is `mnistlab export --onnx` of `mnistlab.load()`: the normalisation and the model card inside, opset 17.
tests/test_bundled_onnx.py checks it against the safetensors (log-probabilities within 1e-4 on 1,000 MNIST test
images, the same digits, the same card), so run this after every change of the bundled weights.
"""

from __future__ import annotations

from pathlib import Path

from mnistlab.bundled import BUNDLED_ONNX

DEST = Path(__file__).resolve().parents[1] / "src" / "mnistlab" / BUNDLED_ONNX


def write_onnx(weights: Path | None = None, dest: Path = DEST) -> Path:
    """`weights` (None: the bundled safetensors) exported as ONNX to `dest`."""
    from mnistlab.classifier import load
    from mnistlab.onnx_export import export_onnx

    return export_onnx(load(weights, device="cpu", engine="torch"), dest)


if __name__ == "__main__":
    print(f"wrote {write_onnx()}")

"""The model that ships in the package: torch weights (safetensors) and the same network as ONNX (no torch here)."""

from __future__ import annotations

from pathlib import Path

BUNDLED = (
    "weights/mnist-default.safetensors"  # inside the package (mnistlab/weights/); made by scripts/bundle_weights.py
)
BUNDLED_ONNX = "weights/mnist-default.onnx"  # the same model exported (scripts/bundle_onnx.py), read by onnxruntime
# In the package: importlib.resources gives the same path for an installed or editable package, and importing it
# costs `mnistlab predict` about 17 ms (tempfile, zipfile) of its 0.6 s.
_PACKAGE = Path(__file__).resolve().parents[1]  # mnistlab/, from mnistlab/store/


def bundled_weights() -> Path:
    """The weights that ship with the package (the default recipe; see the README's model card)."""
    return _PACKAGE / BUNDLED


def bundled_onnx() -> Path:
    """The bundled weights as an ONNX file (normalisation and model card inside), for `--engine onnx`."""
    return _PACKAGE / BUNDLED_ONNX

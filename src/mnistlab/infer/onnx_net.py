"""An exported ONNX file (`mnistlab export --onnx`) run by onnxruntime, as the network of a `Classifier`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mnistlab.errors import UserError, one_line
from mnistlab.infer.onnx_check import check_graph

# The file's contract, written by mnistlab.export.onnx_export (which imports these; this module imports no torch).
INPUT = "image"  # N x 1 x 28 x 28 float32 pixels in [0, 1], white ink on black: normalised inside the graph
CARD = "mnistlab.card"  # the metadata_props key of the model card (JSON); see onnx_export.metadata for the rest
PARAMS, LAYERS = "params", "layers"  # the network's parameter count and receptive-field walk (JSON), if stored


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        # a dependency of mnistlab since 0.2 (not only of the onnx extra): missing only from an odd install
        raise UserError("reading an ONNX model needs onnxruntime: pip install onnxruntime") from None
    return onnxruntime


def session(path: Path):
    """An onnxruntime session of the ONNX file at `path` on the CPU, on one thread that sleeps when idle; a
    UserError when onnxruntime is missing or the file is not a readable ONNX model."""
    ort = _runtime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # One thread that sleeps when idle: a batch of 28x28 digits is a few ms, and onnxruntime's default pool
    # (a thread per core, spinning between runs) took the CPU from image preparation and the HTTP server
    # beside it: mnistlab serve answered fewer requests, and each run cost about twice the CPU time.
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        raise UserError(f"{path} is not a readable ONNX model: {one_line(e)}") from None


class OnnxNet:
    """A mnistlab ONNX file's network on the CPU: called on N prepared images (N x 28 x 28 floats in [0, 1]), it
    gives their log-probabilities (N x classes, float32). `card` is the model card stored in the file.

    The file's graph is checked before onnxruntime reads it (`onnx_check.check_graph`: its input and output, no
    control flow, every value's size bounded), but with `check=False`: the bundled model, the package's own file,
    skips the check and the 0.6 s that importing onnx for it takes."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", check: bool = True):
        if device not in ("auto", "cpu"):
            raise UserError(f"an ONNX model runs on the CPU here, not on {device!r}")
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path} does not exist; pass an ONNX file made by mnistlab export --onnx")
        _runtime()  # onnxruntime missing: said before the check imports onnx
        if check:
            check_graph(path, INPUT)
        self.path = path
        self.session = session(path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        n = outputs[0].shape[-1] if len(outputs) == 1 and len(outputs[0].shape) == 2 else None
        if [i.name for i in inputs] != [INPUT] or not isinstance(n, int):
            raise UserError(f"{path} is not a mnistlab ONNX model (one input named {INPUT!r}, one N x C output)")
        self.num_classes = n
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.card = card_of(self.metadata)

    def stored(self, key: str):
        """A metadata value parsed as JSON (PARAMS, LAYERS, ...); None where the file has none (older exports)."""
        return _json(self.metadata.get(key))

    def __call__(self, seen: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(seen, dtype=np.float32)[:, None]
        try:
            out = self.session.run(None, {INPUT: x})[0]
        except Exception as e:  # onnxruntime's own types: the graph failed on these images
            raise UserError(f"{self.path} failed to run on {len(x)} images: {one_line(e)}") from None
        if not isinstance(out, np.ndarray) or out.shape != (len(x), self.num_classes) or out.dtype != np.float32:
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise UserError(f"{self.path} gave {got} for {len(x)} images, not {len(x)} x {self.num_classes} float32")
        return out


def card_of(metadata: dict[str, str]) -> dict:
    """The model card stored under CARD in an ONNX file's metadata: {} where there is none, or not a JSON object."""
    card = _json(metadata.get(CARD))
    return card if isinstance(card, dict) else {}


def _json(text: str | None):
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None

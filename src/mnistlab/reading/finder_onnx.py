"""The digit finder's ONNX copy (`onnx_export.export_finder`) run by onnxruntime: a Reader's finder without torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnistlab.errors import UserError, one_line
from mnistlab.infer.onnx_net import card_of, session
from mnistlab.reading.frame import INPUT

# The file's contract, written by onnx_export.finder_onnx_bytes (which imports these; this module imports no torch).
INPUT_NAME = "framed"  # [batch, 2, INPUT, INPUT] float32: frame.prepare's input
OUTPUTS = ("heat", "size", "offset")  # heatmap logits [batch, 1, g, g], log box size and offset [batch, 2, g, g]


class OnnxFinder:
    """The finder from an ONNX file on the CPU: called on a batch of prepared inputs [B, 2, INPUT, INPUT], it gives
    the network's outputs (heat, size, offset) as float32 arrays, for `frame.decode`. `card` is the finder's card."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no finder at {path}; make it with scripts/bundle_onnx.py (or train_finder.py --bundle)")
        self.path = path
        self.session = session(path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or list(inputs[0].shape[1:]) != [2, INPUT, INPUT]:
            raise UserError(f"{path} is not a mnistlab finder (one input {INPUT_NAME!r} of N x 2 x {INPUT} x {INPUT})")
        if tuple(o.name for o in outputs) != OUTPUTS:
            raise UserError(f"{path} is not a mnistlab finder (outputs {', '.join(OUTPUTS)})")
        self.card = card_of(dict(self.session.get_modelmeta().custom_metadata_map))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        try:
            heat, size, offset = self.session.run(list(OUTPUTS), {INPUT_NAME: x})
        except Exception as e:  # onnxruntime's own types: the graph failed on this input
            raise UserError(f"{self.path} failed to run on an input of shape {x.shape}: {one_line(e)}") from None
        return heat, size, offset

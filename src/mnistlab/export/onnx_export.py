"""Export a trained Net to ONNX (or torch.export): raw pixels in, log-probabilities out, its model card inside."""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from mnistlab.errors import UserError
from mnistlab.infer.onnx_net import CARD, INPUT, LAYERS, PARAMS
from mnistlab.reading.finder import Finder
from mnistlab.reading.finder_onnx import INPUT_NAME, OUTPUTS
from mnistlab.reading.frame import INPUT as FINDER_SIDE
from mnistlab.store.atomic_write import write_bytes

OPSET = 17
OUTPUT = "log_probs"  # N x classes, before calibration (divide by the temperature and renormalise to calibrate)


class Normalised(nn.Module):
    """The network with its input normalisation in front: a user of the file feeds pixels in [0, 1], as
    `preprocess` makes them, and never needs to know the training mean and std."""

    def __init__(self, net: nn.Module, mean: float, std: float):
        super().__init__()
        self.net, self.mean, self.std = net, mean, std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net((image - self.mean) / self.std)


def _module(classifier) -> Normalised:
    """A float32 CPU copy of `classifier`'s network with its normalisation in front (the classifier is untouched)."""
    return Normalised(copy.deepcopy(classifier.model), classifier.mean, classifier.std).float().cpu().eval()


def metadata(classifier) -> dict[str, str]:
    """The metadata_props of a `Classifier`'s ONNX file (strings; lists as JSON): its model card, and, for
    readers that do not parse the card, the class names, normalisation (already in the graph) and calibration;
    then the network's parameter count and receptive-field walk (`mnistlab serve` on onnxruntime shows them)."""
    from mnistlab.explain.analysis import unit_geometry

    return {
        CARD: json.dumps(classifier.card, sort_keys=True, default=str),
        "classes": json.dumps(classifier.classes),
        "mean": repr(float(classifier.mean)),
        "std": repr(float(classifier.std)),
        "temperature": repr(float(classifier.temperature)),
        "digit_threshold": repr(float(classifier.threshold)),
        PARAMS: str(sum(p.numel() for p in classifier.model.parameters())),
        LAYERS: json.dumps(unit_geometry(classifier.model)),
    }


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise UserError("exporting to ONNX needs the onnx package: pip install 'mnistlab[onnx]'") from None
    return onnx


def onnx_bytes(classifier) -> bytes:
    """`classifier`'s network as an ONNX file's bytes (opset `OPSET`, any batch size), metadata included."""
    onnx = require_onnx()
    module = _module(classifier)
    buffer: Any = io.BytesIO()  # the TorchScript-based exporter writes to a file object too (typed: paths only)
    with warnings.catch_warnings():  # the TorchScript-based exporter warns that it is the older one
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.zeros(1, 1, 28, 28),), buffer, input_names=[INPUT], output_names=[OUTPUT],
            opset_version=OPSET, dynamo=False, dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        )  # fmt: skip
    # The TorchScript-based exporter (dynamo=False): one file in about a second, no onnxscript needed, and
    # opset 17 as asked (the dynamo exporter starts at 18 and converts down). Then the metadata is added. All in
    # memory: the file is written once, whole (see `export_onnx`).
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata(classifier).items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.doc_string = "mnistlab", "digits: raw [0, 1] pixels in, log-probabilities out"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(classifier, file: str | Path) -> Path:
    """Write `classifier`'s network to `file` as ONNX: whole or not at all (a failed write keeps the old file)."""
    return write_bytes(file, onnx_bytes(classifier))


def program_bytes(classifier) -> bytes:
    """`classifier`'s network (normalisation included, any batch size) as a `torch.export` program's bytes (.pt2),
    the metadata in its extra files: `torch.export.load(file).module()` runs it without mnistlab.

    torch.export rather than TorchScript: this torch deprecates `torch.jit.load` (a FutureWarning pointing to
    torch.export), and the program is the form PyTorch's own runtimes (AOTInductor, ExecuTorch) start from."""
    module = _module(classifier)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(module, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files=metadata(classifier))
    return buffer.getvalue()


def export_program(classifier, file: str | Path) -> Path:
    """Write `classifier`'s `program_bytes` to `file`, whole or not at all."""
    return write_bytes(file, program_bytes(classifier))


# The digit finder (reading.finder) as ONNX: the torch-free Reader's finder (reading.finder_onnx).


def finder_onnx_bytes(model: Finder, card: dict) -> bytes:
    """`model` as an ONNX file's bytes: input INPUT_NAME [batch, 2, FINDER_SIDE, FINDER_SIDE], outputs OUTPUTS,
    the classifier export's opset, `card` in the metadata (under onnx_net.CARD, as the classifier's);
    `reading.finder_onnx` runs it."""
    onnx = require_onnx()
    module = copy.deepcopy(model).float().cpu().eval()
    buffer: Any = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter warns that it is the older one
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.zeros(1, 2, FINDER_SIDE, FINDER_SIDE),), buffer, input_names=[INPUT_NAME],
            output_names=list(OUTPUTS),
            opset_version=OPSET, dynamo=False, dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *OUTPUTS)},
        )  # fmt: skip
    proto = onnx.load_from_string(buffer.getvalue())
    proto.metadata_props.add(key=CARD, value=json.dumps(card, sort_keys=True, default=str))
    proto.producer_name = "mnistlab"
    proto.doc_string = "digit finder: frame.prepare's input in; heatmap logits, log box size, centre offset out"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_finder(model: Finder, card: dict, file: str | Path) -> Path:
    """Write `model` (with `card`) to `file` as ONNX: whole or not at all (a failed write keeps the old file)."""
    return write_bytes(file, finder_onnx_bytes(model, card))

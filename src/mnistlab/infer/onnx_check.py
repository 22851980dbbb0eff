"""What an ONNX file must be before onnxruntime runs it: a bounded graph of plain operators, N x 1 x 28 x 28 in."""

from __future__ import annotations

from pathlib import Path

from mnistlab.errors import UserError, one_line

# The limits, each far above what mnistlab's own Net exports to (19 nodes, 2.4 MB, its largest value fc1's 204,800
# weights, its largest activation 21,632 per image): a file beyond them is not one of its models, and they bound
# what a hostile one can cost (no flag: no mnistlab model comes near them).
MAX_FILE_BYTES = 64 * 2**20  # the file is read whole into memory to be checked
MAX_CLASSES = 10_000  # each prediction lists every class (the largest MNIST-format dataset, EMNIST byclass: 62)
MAX_NODES = 1_000  # operators in the graph: each one's work is bounded by MAX_VALUE below
MAX_VALUE = 2**20  # elements of one value (per image for a value of the batch): 1 GiB of float32 at 256 images
CONTROL_FLOW = ("Loop", "Scan", "If")  # their run time depends on the data, not on the shapes checked here
FLOAT = 1  # onnx.TensorProto.FLOAT (the module is imported only when a file is checked)
PIXELS = (1, 28, 28)  # an image's dims after the batch


def check_graph(path: Path, input_name: str) -> int:
    """The class count of the ONNX file at `path`, after checking, before anything runs it, that its graph takes
    `input_name` (batch x 1 x 28 x 28 float32) and gives batch x classes float32, uses only standard operators
    without control flow, and that every value's inferred shape is known (but for the batch) and within MAX_VALUE.
    Anything else is a `UserError`."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path} is {size:,} bytes; a mnistlab ONNX model is at most {MAX_FILE_BYTES:,}")
    try:
        import onnx
    except ImportError:
        raise UserError("checking an ONNX model needs the onnx package: pip install 'mnistlab[onnx]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and onnx's own
        raise UserError(f"{path} is not a readable ONNX model: {one_line(e)}") from None
    _check_operators(model, path)
    batch, classes = _check_signature(model.graph, path, input_name)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # onnx's InferenceError, ValidationError
        raise UserError(f"{path} is not a valid ONNX model: {one_line(e)}") from None
    _check_values(inferred.graph, path, batch)
    return classes


def _check_operators(model, path: Path) -> None:
    """Standard operators only, at most MAX_NODES, none with a subgraph (control flow)."""
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    if len(nodes) > MAX_NODES:
        raise UserError(f"{path} has {len(nodes):,} operators; a mnistlab ONNX model has at most {MAX_NODES:,}")
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            raise UserError(f"{path} uses the operator {node.domain}.{node.op_type}; only standard ONNX ones run")
        if node.op_type in CONTROL_FLOW or any(a.HasField("g") or len(a.graphs) for a in node.attribute):
            raise UserError(
                f"{path} has control flow ({node.op_type}): its run time cannot be bounded before it runs, "
                "and a mnistlab model has none"
            )


def _dims(value) -> list:
    """A value's dims: ints, symbol names, or None where unknown; None for a value of no known tensor shape."""
    if value.type.WhichOneof("value") != "tensor_type" or not value.type.tensor_type.HasField("shape"):
        return None  # type: ignore[return-value]
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
        for d in value.type.tensor_type.shape.dim
    ]


def _describe(value) -> str:
    """'name: batch x 784, DOUBLE': what a value is declared to be, for a message."""
    from onnx import TensorProto

    dims = _dims(value)
    shape = " x ".join("?" if d is None else str(d) for d in dims) if dims is not None else "no tensor shape"
    kind = value.type.tensor_type.elem_type if value.type.WhichOneof("value") == "tensor_type" else 0
    dtype = TensorProto.DataType.Name(kind) if kind in TensorProto.DataType.values() else f"type {kind}"
    return f"{value.name}: {shape}, {dtype}"


def _float_tensor(value, dims: int) -> list | None:
    """The dims of `value` if it is a float32 tensor of `dims` dims whose first is a named (batch) dim, else None."""
    shape = _dims(value)
    ok = shape is not None and len(shape) == dims and isinstance(shape[0], str) and shape[0] != ""
    return shape if ok and value.type.tensor_type.elem_type == FLOAT else None


def _check_signature(graph, path: Path, input_name: str) -> tuple[str, int]:
    """(the batch dim's name, the class count) of a graph with exactly one input, `input_name`, batch x 1 x 28 x 28
    float32, and one output, batch x classes float32 with classes in 2..MAX_CLASSES."""
    weights = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    image = _float_tensor(inputs[0], 4) if len(inputs) == 1 and inputs[0].name == input_name else None
    if image is None or tuple(image[1:]) != PIXELS:
        raise UserError(
            f"{path} is not a mnistlab ONNX model: its one input must be {input_name}: batch x 1 x 28 x 28, "
            f"FLOAT (it has {'; '.join(map(_describe, inputs)) or 'none'})"
        )
    out = _float_tensor(graph.output[0], 2) if len(graph.output) == 1 else None
    if out is None or out[0] != image[0] or not isinstance(out[1], int):
        raise UserError(
            f"{path} is not a mnistlab ONNX model: its one output must be batch x classes, FLOAT (it has "
            f"{'; '.join(map(_describe, graph.output)) or 'none'})"
        )
    if not 2 <= out[1] <= MAX_CLASSES:
        raise UserError(
            f"{path} declares {out[1]:,} class{'es' * (out[1] != 1)}; a mnistlab ONNX model has 2 to {MAX_CLASSES:,}"
        )
    return image[0], out[1]


def _check_values(graph, path: Path, batch: str) -> None:
    """Every value (weights, inputs, outputs and each operator's outputs) has an inferred tensor shape of known
    dims, but for one batch dim, and at most MAX_VALUE elements (per image)."""
    shapes = {v.name: _dims(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    shapes |= {t.name: list(t.dims) for t in graph.initializer}
    names = [name for node in graph.node for name in node.output if name] + list(shapes)
    for name in dict.fromkeys(names):
        dims = shapes.get(name)
        if dims is None or any(d is None or (d != batch if isinstance(d, str) else d < 0) for d in dims):
            raise UserError(f"{path}: the size of its value {name!r} cannot be known before it runs ({dims})")
        if dims.count(batch) > 1:
            raise UserError(f"{path}: its value {name!r} grows as a power of the batch ({dims})")
        elements = 1
        for d in dims:
            elements *= 1 if d == batch else d
        if elements > MAX_VALUE:
            raise UserError(
                f"{path}: its value {name!r} would hold {elements:,} elements (per image); a mnistlab ONNX model's "
                f"hold at most {MAX_VALUE:,}"
            )

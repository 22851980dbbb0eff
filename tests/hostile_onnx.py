"""Tiny hostile ONNX files, made with onnx.helper: what issue 28 tried on `--model x.onnx`
(tests/infer/test_onnx_check.py checks each is refused before it runs; benchmarks/refusals.py times the refusals)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IMAGE = ["batch", 1, 28, 28]


def _model(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _image(elem=TensorProto.FLOAT, shape=IMAGE):
    return helper.make_tensor_value_info("image", elem, shape)


def _linear(classes: int = 10, weight: float = 0.0) -> tuple[list, list]:
    """(nodes, initializers): image -> Flatten -> Gemm -> LogSoftmax -> log_probs (batch x classes)."""
    w = numpy_helper.from_array(np.full((784, classes), weight, np.float32), "w")
    b = numpy_helper.from_array(np.zeros(classes, np.float32), "b")
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=1),
    ]
    return nodes, [w, b]


def _out(classes=10, name="log_probs"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", classes])


def declaring(classes: int) -> onnx.ModelProto:
    """A graph that gives `classes` classes: one linear output expanded to batch x classes (10^8 classes made 10^8
    class names: 7 GB; 0 or 1: tracebacks)."""
    nodes, weights = _linear(classes=1)
    nodes[1].output[0] = "one"  # (LogSoftmax reads the expanded "logits")
    shape = numpy_helper.from_array(np.array([1, classes], np.int64), "shape")
    expand = helper.make_node("Expand", ["one", "shape"], ["logits"])
    return _model([*nodes[:2], expand, nodes[2]], [_image()], [_out(classes)], [*weights, shape])


def flat_input() -> onnx.ModelProto:
    """An N x 784 input."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 784])
    nodes, weights = _linear()
    nodes[1].input[0] = "image"  # the Gemm on the input itself
    return _model(nodes[1:], [x], [_out()], weights)


def double_input() -> onnx.ModelProto:
    """A float64 input."""
    nodes, weights = _linear()
    cast = helper.make_node("Cast", ["image"], ["single"], to=TensorProto.FLOAT)
    nodes[0].input[0] = "single"
    return _model([cast, *nodes], [_image(TensorProto.DOUBLE)], [_out()], weights)


def plain() -> onnx.ModelProto:
    """The control: a well-formed linear model (zero weights) that every check passes."""
    nodes, weights = _linear()
    return _model(nodes, [_image()], [_out()], weights)


def nan_output() -> onnx.ModelProto:
    """A well-formed model whose every output is NaN."""
    nodes, weights = _linear(weight=float("nan"))
    return _model(nodes, [_image()], [_out()], weights)


def _plus_sum_of(extra: list, value: str, initializers=()) -> onnx.ModelProto:
    """The linear model with the sum of `value` (made by `extra` nodes) added to its logits."""
    nodes, weights = _linear()
    nodes[1].output[0] = "linear"
    tail = [
        helper.make_node("ReduceSum", [value], ["total"], keepdims=0),
        helper.make_node("Add", ["linear", "total"], ["logits"]),
    ]
    return _model([*nodes[:2], *extra, *tail, nodes[2]], [_image()], [_out()], [*weights, *initializers])


def constant_of_shape(elements: int = 10**12) -> onnx.ModelProto:
    """A ConstantOfShape of `elements` float32 (10^12: 4 TB)."""
    shape = numpy_helper.from_array(np.array([elements], np.int64), "shape")
    fill = helper.make_node("ConstantOfShape", ["shape"], ["filled"], value=helper.make_tensor("v", 1, [1], [1.0]))
    return _plus_sum_of([fill], "filled", [shape])


def size_from_pixels() -> onnx.ModelProto:
    """A ConstantOfShape whose size is computed from the pixels (unknown until it runs)."""
    k = numpy_helper.from_array(np.array([1e9], np.float32), "k")
    nodes = [
        helper.make_node("ReduceMax", ["image"], ["brightest"], keepdims=0),
        helper.make_node("Mul", ["brightest", "k"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["count"], to=TensorProto.INT64),
        helper.make_node("ConstantOfShape", ["count"], ["filled"]),
    ]
    return _plus_sum_of(nodes, "filled", [k])


def loop(steps: int = 2**40) -> onnx.ModelProto:
    """A Loop of `steps` steps, each adding 1 to a loop-carried scalar."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, []),
        ],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    start = [
        numpy_helper.from_array(np.array(steps, np.int64), "steps"),
        numpy_helper.from_array(np.array(True), "go"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    node = helper.make_node("Loop", ["steps", "go", "zero"], ["counted"], body=body)
    return _plus_sum_of([node], "counted", start)


def write(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def files(folder: Path) -> dict[str, Path]:
    """Each hostile file of issue 28's row 7 (and the NaN output of row 6), written into `folder`."""
    made = {
        "10^8 classes": declaring(10**8),
        "10^9 classes": declaring(10**9),
        "0 classes": declaring(0),
        "1 class": declaring(1),
        "N x 784 input": flat_input(),
        "float64 input": double_input(),
        "4 TB ConstantOfShape": constant_of_shape(),
        "ConstantOfShape sized by the pixels": size_from_pixels(),
        "Loop of 2^40 steps": loop(),
        "NaN output": nan_output(),
    }
    return {name: write(m, folder / f"hostile{i}.onnx") for i, (name, m) in enumerate(made.items())}

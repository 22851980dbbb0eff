"""Which engine runs the network: onnxruntime (no torch imported) or torch, from the model, the device and what is
installed; `--engine` and $MNISTLAB_ENGINE choose, `auto` takes onnxruntime wherever it can."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mnistlab.errors import UserError
from mnistlab.store.bundled import bundled_onnx

ENGINES = ("auto", "onnx", "torch")
ENV = "MNISTLAB_ENGINE"  # the command line's default engine (--engine overrides it)
# auto runs onnxruntime for the bundled model (its ONNX copy ships beside the safetensors) and for .onnx files, on
# the CPU, when onnxruntime is installed; torch for run folders and .safetensors files, --device cuda or mps, or
# without onnxruntime. Training, explanations (saliency) and export always use torch.


def help_text(fallback: str = "auto") -> str:
    """--engine's help, for a command whose default (without $MNISTLAB_ENGINE) is `fallback`."""
    return (
        "what runs the network: onnx (onnxruntime, on the CPU, without importing torch: the bundled model or a .onnx "
        "file), torch (any weights, any device), or auto: onnx where it can, else torch "
        f"(default: ${ENV}, else {fallback})"
    )


def default_engine(fallback: str = "auto") -> str:
    """$MNISTLAB_ENGINE (one of ENGINES), else `fallback`."""
    value = os.environ.get(ENV, "").strip().lower() or fallback
    if value not in ENGINES:
        raise UserError(f"${ENV} must be one of {', '.join(ENGINES)}, not {value!r}")
    return value


def has_onnxruntime() -> bool:
    """Whether onnxruntime is installed (found, not imported)."""
    return importlib.util.find_spec("onnxruntime") is not None


def is_onnx_file(source: str | os.PathLike | None) -> bool:
    return source is not None and str(source).lower().endswith(".onnx")


def choose(source: str | os.PathLike | None, device: str, engine: str | None) -> tuple[str, Path | None]:
    """(engine, the file it reads: None for torch's bundled weights) for `source` (None: bundled) on `device`.

    `engine` None is the Python API's default: onnx for a .onnx file, torch otherwise."""
    if engine not in (None, *ENGINES):
        raise UserError(f"the engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    onnx = is_onnx_file(source)
    if engine is None:
        engine = "onnx" if onnx else "torch"
    elif engine == "auto":
        ready = onnx or (source is None and bundled_onnx().is_file() and device in ("cpu", "auto"))
        engine = "onnx" if ready and has_onnxruntime() else "torch"
        if onnx:
            engine = "onnx"  # a .onnx file has no torch weights (without onnxruntime, OnnxNet says what to install)
    if engine == "torch":
        if onnx:
            raise UserError(f"{source} is an ONNX file, read by onnxruntime: use --engine onnx (or auto)")
        return "torch", None if source is None else Path(source)
    if source is None:
        return "onnx", bundled_onnx()
    if not onnx:
        raise UserError(
            f"the onnx engine reads the bundled model or a .onnx file, and {source} is torch weights: use "
            f"--engine torch, or make one with mnistlab export --onnx FILE --model {source}"
        )
    return "onnx", Path(source)

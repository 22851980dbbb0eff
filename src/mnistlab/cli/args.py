"""What every command's options share: the parser whose mistakes are one line, the argument types, --version."""

from __future__ import annotations

import argparse
import math

from mnistlab.errors import UserError
from mnistlab.infer import engine
from mnistlab.recipe_schema import DEVICES


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`mnistlab: error: …`) and exit status 2."""

    def error(self, message):
        raise UserError(f"{message} (see: {self.prog} --help)")


def int_at_least(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number >= minimum (and <= maximum, if given)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {v}")
        return v

    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
port = int_at_least(0, 65535)


def positive_float(text: str, zero: bool = False) -> float:
    """An argparse type: a finite number > 0 (>= 0 with `zero`)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 if zero else v > 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if zero else '>'} 0, got {text}")
    return v


def non_negative_float(text: str) -> float:
    return positive_float(text, zero=True)


def epochs(text: str) -> int | float:
    """An argparse type: a number of epochs > 0, a whole one as an int (5, not 5.0, in recipe.json)."""
    v = positive_float(text)
    return int(v) if v.is_integer() else v


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where datasets are kept (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--data-dir and --mirror: where a command finds (or fetches) its dataset."""
    add_data_dir(p)
    p.add_argument(
        "--mirror",
        help="folder or URL holding the dataset's official files (MNIST: the four .gz files), used instead of "
        "the internet (default: $MNISTLAB_MIRROR); their content is still checked",
    )


def add_model_args(p: argparse.ArgumentParser, onnx: bool = False, engine_fallback: str = "auto") -> None:
    """--model, --device and --engine of the commands that use trained weights (predict, serve); `onnx`: .onnx
    files too; `engine_fallback`: the engine without --engine or $MNISTLAB_ENGINE."""
    also = ", or a .onnx file from mnistlab export --onnx (run by onnxruntime, on the CPU)" if onnx else ""
    p.add_argument(
        "--model",
        metavar="RUN_OR_WEIGHTS",
        help=f"a run folder or a .safetensors weights file{also} (default: the weights bundled with mnistlab)",
    )
    p.add_argument("--device", default="cpu", choices=DEVICES, help="default: %(default)s")
    p.add_argument("--engine", choices=engine.ENGINES, help=engine.help_text(engine_fallback))


def chosen_engine(args: argparse.Namespace, fallback: str = "auto") -> str:
    """--engine, else $MNISTLAB_ENGINE, else `fallback` (the command's own default)."""
    return args.engine or engine.default_engine(fallback)

"""What each `Recipe` setting may hold: whole numbers, real numbers and choices with their ranges, checked by
`Recipe.validate`. Ranges are "sensible", not merely representable: far beyond them a run is a typo (an lr of 1e308
overflows the optimiser; a seed of 2**64 overflows torch's generator)."""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass

# A recipe's name names its run folder, runs/NAME-YYYYMMDD-HHMMSS: letters, digits, ".", "_" and "-" only, not
# starting with "." or "-" (no path, no hidden folder, no option, no terminal code), and at most 100 characters
# (the folder's name then stays far below the 255 bytes file systems allow).
NAME_MAX = 100
NAME_PATTERN = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{NAME_MAX - 1}}}")
# `tuned` records where `mnistlab tune` found a recipe: a flat object. Nesting deeper than this is no tune's record,
# and a structure thousands deep would overflow Python's recursion when copied or written out.
TUNED_DEPTH = 8
# A recipe is about 1.5 KB of JSON. It is stored whole in recipe.json, in every checkpoint's and model card's
# safetensors header (which safetensors caps at 100 MB) and in the TensorBoard hparams: a recipe file, or a recipe,
# of more than 1 MB is refused before anything is read further or written.
RECIPE_MAX_BYTES = 1_000_000

_WHOLE = {  # name: (lowest, highest)
    "batch_size": (1, 65_536),
    "eval_batch_size": (1, 65_536),
    "step_size": (1, 10_000),
    "num_workers": (0, 256),
    "seed": (0, 2**63 - 1),
    "world_size": (1, 65_536),
}
_OPTIONAL_WHOLE = {"limit_train": (1, 10**9), "limit_test": (1, 10**9), "val": (1, 10**9)}
_OPTIONAL_REAL = {"mean": (0.0, 1.0, True), "std": (0.0, 1.0, False)}  # None: resolved from the dataset at start
_REAL = {  # name: (lowest, highest, lowest allowed?)
    "epochs": (0.0, 10_000.0, False),
    "lr": (0.0, 10.0, False),
    "momentum": (0.0, 1.0, True),
    "weight_decay": (0.0, 1.0, True),
    "gamma": (0.0, 1.0, False),
    "pct_start": (0.0, 0.5, False),
    "div_factor": (1.0, 1e6, True),
    "final_div_factor": (1.0, 1e9, True),
    "label_smoothing": (0.0, 0.99, True),
    "outliers": (0.0, 0.5, True),
    "outlier_weight": (0.0, 10.0, True),
    "aug_degrees": (0.0, 180.0, True),
    "aug_scale": (0.0, 0.9, True),
    "aug_translate": (0.0, 14.0, True),
}
_CHOICES = {
    "aug_hflip": ("auto", "on", "off"),
    "augment": ("affine", "robust", "outliers"),
    "optimizer": ("adamw", "sgd"),
    "scheduler": ("onecycle", "step"),
    "pipeline": ("resident", "loader"),
    "amp": ("auto", "bf16", "off"),
    "cuda_graphs": ("auto", "on", "off"),
    "device": ("auto", "cpu", "cuda", "mps"),  # and cuda:N
}
_FLAGS = ("nesterov", "channels_last", "compile", "keep_cpu_buffers")


def _is_whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_setting(name: str, v) -> str | None:
    """What is wrong with setting `name` holding `v`, or None."""
    if name in _WHOLE or name in _OPTIONAL_WHOLE:
        return _check_whole(name, v)
    if name in _REAL or name in _OPTIONAL_REAL:
        return _check_real(name, v)
    if name in _CHOICES:
        cuda_n = name == "device" and isinstance(v, str) and v.startswith("cuda:") and v[5:].isdigit()
        return None if v in _CHOICES[name] or cuda_n else f"must be one of {', '.join(_CHOICES[name])}, not {shown(v)}"
    if name in _FLAGS:
        return None if isinstance(v, bool) else f"must be true or false, not {shown(v)}"
    if name == "dataset":
        from mnistlab.data.datasets import FOLDER_PREFIX, names

        folder = isinstance(v, str) and v.startswith(FOLDER_PREFIX) and len(v) > len(FOLDER_PREFIX)
        if not isinstance(v, str) or not (v in names() or folder):
            return f"must be one of {', '.join(names())}, or {FOLDER_PREFIX}PATH, not {shown(v)}"
        return None
    if name == "tuned":
        return _check_tuned(v)
    if name == "init":
        ok = v is None or (isinstance(v, str) and bool(v))
        return None if ok else f"must be a run folder or weights file, or null, not {shown(v)}"
    if name == "crops":
        ok = v is None or (isinstance(v, str) and bool(v))
        return None if ok else f"must be a crop set (.npz of scripts/make_crops.py), or null, not {shown(v)}"
    if name == "name":
        return name_problem(v)
    return None if isinstance(v, str) and v else f"must be a non-empty string, not {shown(v)}"


def shown(v) -> str:
    """`v` as a mistake's message shows it: its repr (control characters escaped), cut short and shallow."""
    r = reprlib.Repr()  # (its keyword arguments came in Python 3.12)
    r.maxlevel, r.maxstring, r.maxother, r.maxdict, r.maxlist = 2, 60, 60, 4, 4
    return r.repr(v)


def name_problem(v) -> str | None:
    """What is wrong with `v` as a recipe's name (`NAME_PATTERN`), or None."""
    if isinstance(v, str) and NAME_PATTERN.fullmatch(v):
        return None
    return (
        f"must be 1 to {NAME_MAX} letters, digits, '.', '_' or '-', not starting with '.' or '-' (it names the run "
        f"folder), not {shown(v)}"
    )


def depth(v) -> int:
    """How deeply JSON-like `v` nests lists and objects (0 for a number or string), counted without recursion."""
    deepest, stack = 0, [(v, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, level + 1)
            if level + 1 <= TUNED_DEPTH:  # (no need to walk further than the limit)
                stack.extend((x, level + 1) for x in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_tuned(v) -> str | None:
    if v is not None and not (isinstance(v, dict) and all(isinstance(k, str) for k in v)):
        return f"must be an object (what `mnistlab tune` found), or null, not {shown(v)}"
    if v is not None and depth(v) > TUNED_DEPTH:
        return f"nests more than {TUNED_DEPTH} levels deep (what `mnistlab tune` writes is one level)"
    return None


def _check_whole(name: str, v) -> str | None:
    if v is None and name in _OPTIONAL_WHOLE:
        return None
    lo, hi = (_WHOLE | _OPTIONAL_WHOLE)[name]
    if _is_whole(v) and lo <= v <= hi:
        return None
    null = " or null" if name in _OPTIONAL_WHOLE else ""
    return f"must be a whole number from {lo} to {hi:,}{null}, not {shown(v)}"


def _check_real(name: str, v) -> str | None:
    if v is None and name in _OPTIONAL_REAL:
        return None
    lo, hi, closed = (_REAL | _OPTIONAL_REAL)[name]
    number = (_is_whole(v) or isinstance(v, float)) and math.isfinite(v)
    if number and (lo <= v if closed else lo < v) and v <= hi:
        return None
    null = " or null" if name in _OPTIONAL_REAL else ""
    return f"must be a number in {'[' if closed else '('}{lo:g}, {hi:g}]{null}, not {shown(v)}"


# --------------------------------------------------------------------------------------------------------------
# What `mnistlab tune` searches: the settings that mattered in the hand sweeps (benchmarks/results/tuning-*/)


@dataclass(frozen=True)
class Dimension:
    """One setting `mnistlab tune` varies: a real in [low, high] (log-uniform with `log`), or one of `choices`.

    `epochs` is a fraction of the tune's budget (--epochs); `robust` ones vary only for the robust augmentation."""

    name: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[int, ...] | None = None
    robust: bool = False


SEARCH_SPACE = (
    Dimension("lr", 1e-3, 2e-2, log=True),
    Dimension("batch_size", choices=(32, 64, 128, 256)),
    Dimension("epochs", 0.25, 1.0),  # x the budget, in steps of a twentieth of it
    Dimension("pct_start", 0.05, 0.5),  # the warm-up
    Dimension("label_smoothing", 0.0, 0.2),
    Dimension("aug_degrees", 0.0, 25.0),
    Dimension("aug_scale", 0.0, 0.25),
    Dimension("aug_translate", 0.0, 3.5),
    Dimension("outliers", 0.0, 0.25, robust=True),
    Dimension("outlier_weight", 0.1, 1.0, robust=True),
)

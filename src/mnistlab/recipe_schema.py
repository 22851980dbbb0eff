"""Every `Recipe` setting, declared once: its default, what it may hold (whole numbers, real numbers and choices with
their ranges, checked by `Recipe.validate`) and its `mnistlab train` option, if it has one. Ranges are "sensible",
not merely representable: far beyond them a run is a typo (an lr of 1e308 overflows the optimiser; a seed of 2**64
overflows torch's generator)."""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
DEVICES = ("auto", "cpu", "cuda", "mps")  # where a run (or inference) runs; a recipe may also name cuda:N


def _is_whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# --------------------------------------------------------------------------------------------------------------
# The ranges: each is called with a value and says what is wrong with it, or None


@dataclass(frozen=True)
class Whole:
    """A whole number from `lo` to `hi` (or None, with `null`)."""

    lo: int
    hi: int
    null: bool = False

    def __call__(self, v) -> str | None:
        if (v is None and self.null) or (_is_whole(v) and self.lo <= v <= self.hi):
            return None
        null = " or null" if self.null else ""
        return f"must be a whole number from {self.lo} to {self.hi:,}{null}, not {shown(v)}"


@dataclass(frozen=True)
class Real:
    """A finite number in [lo, hi], or (lo, hi] where `lo` is not `closed` (or None, with `null`)."""

    lo: float
    hi: float
    closed: bool = True
    null: bool = False

    def __call__(self, v) -> str | None:
        if v is None and self.null:
            return None
        number = (_is_whole(v) or isinstance(v, float)) and math.isfinite(v)
        if number and (self.lo <= v if self.closed else self.lo < v) and v <= self.hi:
            return None
        null = " or null" if self.null else ""
        return f"must be a number in {'[' if self.closed else '('}{self.lo:g}, {self.hi:g}]{null}, not {shown(v)}"


@dataclass(frozen=True)
class Choice:
    """One of `options` (or `numbered`:N, such as cuda:1, where `numbered` is given)."""

    options: tuple[str, ...]
    numbered: str | None = None

    def __call__(self, v) -> str | None:
        prefix = f"{self.numbered}:"
        numbered = bool(self.numbered) and isinstance(v, str) and v.startswith(prefix) and v[len(prefix) :].isdigit()
        return None if v in self.options or numbered else f"must be one of {', '.join(self.options)}, not {shown(v)}"


@dataclass(frozen=True)
class Switch:
    """True or false."""

    def __call__(self, v) -> str | None:
        return None if isinstance(v, bool) else f"must be true or false, not {shown(v)}"


@dataclass(frozen=True)
class PathOrNull:
    """A non-empty string naming `what` (not checked for existence here), or None."""

    what: str

    def __call__(self, v) -> str | None:
        ok = v is None or (isinstance(v, str) and bool(v))
        return None if ok else f"must be {self.what}, or null, not {shown(v)}"


def dataset_problem(v) -> str | None:
    """What is wrong with `v` as a dataset: a name from `mnistlab datasets`, or folder:PATH."""
    from mnistlab.data.datasets import FOLDER_PREFIX, names

    folder = isinstance(v, str) and v.startswith(FOLDER_PREFIX) and len(v) > len(FOLDER_PREFIX)
    if not isinstance(v, str) or not (v in names() or folder):
        return f"must be one of {', '.join(names())}, or {FOLDER_PREFIX}PATH, not {shown(v)}"
    return None


def name_problem(v) -> str | None:
    """What is wrong with `v` as a recipe's name (`NAME_PATTERN`), or None."""
    if isinstance(v, str) and NAME_PATTERN.fullmatch(v):
        return None
    return (
        f"must be 1 to {NAME_MAX} letters, digits, '.', '_' or '-', not starting with '.' or '-' (it names the run "
        f"folder), not {shown(v)}"
    )


def tuned_problem(v) -> str | None:
    """What is wrong with `v` as the record of a `mnistlab tune` trial: a flat object of string keys, or None."""
    if v is not None and not (isinstance(v, dict) and all(isinstance(k, str) for k in v)):
        return f"must be an object (what `mnistlab tune` found), or null, not {shown(v)}"
    if v is not None and depth(v) > TUNED_DEPTH:
        return f"nests more than {TUNED_DEPTH} levels deep (what `mnistlab tune` writes is one level)"
    return None


def _non_empty(v) -> str | None:
    return None if isinstance(v, str) and v else f"must be a non-empty string, not {shown(v)}"


def shown(v) -> str:
    """`v` as a mistake's message shows it: its repr (control characters escaped), cut short and shallow."""
    r = reprlib.Repr()  # (its keyword arguments came in Python 3.12)
    r.maxlevel, r.maxstring, r.maxother, r.maxdict, r.maxlist = 2, 60, 60, 4, 4
    return r.repr(v)


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


# --------------------------------------------------------------------------------------------------------------
# The settings


@dataclass(frozen=True)
class Option:
    """The `mnistlab train` option of a setting, `--NAME` (underscores as dashes); cli/recipe_flags.py makes it,
    its type or choices following the setting's range, its help ending in the values the recipes give it."""

    help: str
    rank: int  # its place among the recipe options in --help
    metavar: str | None = None
    none: str = "none"  # what the setting's None means, in the help
    whole_as_int: bool = False  # a whole number given stays an int (epochs: 5, not 5.0, in recipe.json)


def setting(default: Any, range: Callable[[Any], str | None], option: Option | None = None) -> Any:
    """A `Settings` field: its default, its range (what may it hold) and its option, if it has one."""
    return dataclasses.field(default=default, metadata={"range": range, "option": option})


@dataclass
class Settings:
    """Every setting of a training run, with its default, its range and its option; `recipes.Recipe` is these
    settings with their checks, their JSON and their names."""

    name: str = setting("default", name_problem)  # the named recipe this run started from
    # the data: a name from `mnistlab datasets`, or folder:PATH (one sub-folder per class)
    dataset: str = setting(
        "mnist",
        dataset_problem,
        Option(
            "what to train on: mnist, fashion-mnist, kmnist, emnist-digits, emnist-letters, emnist-balanced, qmnist "
            "(see `mnistlab datasets`), or folder:PATH for your own images, one sub-folder per class (PATH/train and "
            "PATH/test if you have a test split, else 20% is held out)",
            rank=1,
        ),
    )
    # input normalisation on 0..1; None: the dataset's recorded value (MNIST 0.1307) or else computed from its
    # training images; recipe.json records the value used
    mean: float | None = setting(None, Real(0.0, 1.0, closed=True, null=True))
    std: float | None = setting(None, Real(0.0, 1.0, closed=False, null=True))
    # start from these weights (a run folder or .safetensors): fine-tuning; None: random
    init: str | None = setting(
        None,
        PathOrNull("a run folder or weights file"),
        Option(
            "start from these trained weights (a run folder or .safetensors) to fine-tune; a head with another class "
            "count is replaced",
            rank=2,
            metavar="RUN_OR_WEIGHTS",
            none="random weights",
        ),
    )
    # passes over the training set; a fraction trains the first part of the last epoch's batches (0.6: 60% of one
    # epoch, its images chosen by the seed's shuffle); OneCycle spans exactly this many
    epochs: float = setting(
        5,
        Real(0.0, 10_000.0, closed=False),
        Option("number of epochs, fractions allowed: 0.6 trains 60% of one epoch's batches", rank=3, whole_as_int=True),
    )
    # training images per step
    batch_size: int = setting(256, Whole(1, 65_536), Option("training batch size", rank=4))
    # optimiser
    optimizer: str = setting("adamw", Choice(("adamw", "sgd")))
    # peak learning rate for onecycle, the starting one for step
    lr: float = setting(3e-3, Real(0.0, 10.0, closed=False), Option("(peak) learning rate", rank=5))
    momentum: float = setting(0.9, Real(0.0, 1.0))  # sgd only
    nesterov: bool = setting(False, Switch())  # sgd only
    weight_decay: float = setting(5e-4, Real(0.0, 1.0))  # decoupled for adamw, L2 for sgd
    # schedule: "onecycle" (stepped per batch) | "step" (stepped per epoch)
    scheduler: str = setting("onecycle", Choice(("onecycle", "step")))
    step_size: int = setting(2, Whole(1, 10_000))  # step only: epochs between decays
    gamma: float = setting(0.1, Real(0.0, 1.0, closed=False))  # step only: the decay factor
    # onecycle only: the fraction of steps spent warming up; the warm-up starts at lr / div_factor; it ends at
    # lr / div_factor / final_div_factor
    pct_start: float = setting(0.25, Real(0.0, 0.5, closed=False))
    div_factor: float = setting(10.0, Real(1.0, 1e6))
    final_div_factor: float = setting(100.0, Real(1.0, 1e9))
    # loss
    label_smoothing: float = setting(0.1, Real(0.0, 0.99))  # 0 gives the seed's plain nll loss
    # data pipeline: "resident" (on-device tensors + affine) | "loader" (seed DataLoader + PIL)
    pipeline: str = setting("resident", Choice(("resident", "loader")))
    num_workers: int = setting(2, Whole(0, 256))  # loader only: DataLoader worker processes
    aug_degrees: float = setting(15.0, Real(0.0, 180.0))  # resident only: rotation, +- degrees
    aug_scale: float = setting(0.1, Real(0.0, 0.9))  # resident only: scale 1 +- this
    aug_translate: float = setting(2.0, Real(0.0, 14.0))  # resident only: shift, +- pixels
    # resident only: mirror images; "auto" = where it keeps labels (fashion-mnist) | on | off
    aug_hflip: str = setting("auto", Choice(("auto", "on", "off")))
    # resident only: "affine" (the above) | "robust" (robust.py: elastic, strokes, marks, blur, light, noise, on top
    # of the affine, and not-digits for outlier exposure) | "outliers" (the affine and the not-digits only: the
    # bundled model's short last phase)
    augment: str = setting("affine", Choice(("affine", "robust", "outliers")))
    # robust only: the fraction of each batch replaced by not-digits (uniform target), and their loss's weight
    # against the digits'
    outliers: float = setting(0.125, Real(0.0, 0.5))
    outlier_weight: float = setting(0.5, Real(0.0, 10.0))
    # train on the first N training images only (None: all 60,000)
    limit_train: int | None = setting(
        None,
        Whole(1, 10**9, null=True),
        Option("train on the first N training images only", rank=7, metavar="N", none="all"),
    )
    # evaluate on the first N test images only (None: all 10,000)
    limit_test: int | None = setting(
        None,
        Whole(1, 10**9, null=True),
        Option("evaluate on the first N test images only", rank=8, metavar="N", none="all"),
    )
    # hold out the last N training images and evaluate on them, not the test set (for tuning)
    val: int | None = setting(
        None,
        Whole(1, 10**9, null=True),
        Option(
            "hold out the last N training images and evaluate on them instead of the test set (for choosing "
            "settings without looking at the test set)",
            rank=9,
            metavar="N",
        ),
    )
    # also train on this crop set: a .npz of scripts/make_crops.py (the finder's crops of generated scenes,
    # labelled); its not-digits (label -1) train as the robust augmentation's do (robust|outliers)
    crops: str | None = setting(None, PathOrNull("a crop set (.npz of scripts/make_crops.py)"))
    # execution: "auto" (bf16 where it is faster) | "bf16" | "off"
    amp: str = setting(
        "auto",
        Choice(("auto", "bf16", "off")),
        Option("bf16 autocast: auto (where it is faster), bf16, or off for float32 throughout", rank=11),
    )
    channels_last: bool = setting(True, Switch())  # NHWC activations: faster convolutions on CPU and GPU
    # torch.compile the model (measured slower here; see README)
    compile: bool = setting(False, Switch(), Option("torch.compile the model", rank=10))
    # "auto" (on CUDA with the resident pipeline) | "on" | "off"
    cuda_graphs: str = setting("auto", Choice(("auto", "on", "off")))
    # CPU: glibc keeps large buffers instead of mmap/munmap per step (runtime)
    keep_cpu_buffers: bool = setting(True, Switch())
    eval_batch_size: int = setting(2000, Whole(1, 65_536))  # test images per evaluation batch
    # "auto" (cuda, then mps, then cpu) | "cpu" | "cuda" | "mps" | "cuda:N"
    device: str = setting(
        "auto", Choice(DEVICES, numbered="cuda"), Option("where to run: auto = cuda, then mps, then cpu", rank=12)
    )
    # every random choice of the run derives from it
    seed: int = setting(1, Whole(0, 2**63 - 1), Option("random seed", rank=6))
    # informational: the training processes (torchrun's WORLD_SIZE) that shared each batch_size batch; a run
    # trains the same model whatever their number, and may be resumed with another
    world_size: int = setting(1, Whole(1, 65_536))
    # informational: the `mnistlab tune` trial this recipe is (study, trial, val result)
    tuned: dict | None = setting(None, tuned_problem)


_RANGES = {f.name: f.metadata["range"] for f in dataclasses.fields(Settings)}


def check_setting(name: str, v) -> str | None:
    """What is wrong with setting `name` holding `v`, or None (a name that is no setting: a non-empty string)."""
    return _RANGES.get(name, _non_empty)(v)


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

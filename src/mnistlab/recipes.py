"""Training recipes: one dataclass holds every setting of a run; `seed` and `default` are the named ones."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from mnistlab.errors import UserError


@dataclass
class Recipe:
    """Everything that decides a training run. Saved as recipe.json in every run folder."""

    name: str = "default"  # the named recipe this run started from
    dataset: str = "mnist"  # the data to train and test on
    epochs: int = 5  # passes over the training set; OneCycle spans exactly this many
    batch_size: int = 256  # training images per step
    # optimiser
    optimizer: str = "adamw"  # "adamw" | "sgd"
    lr: float = 3e-3  # peak learning rate for onecycle, the starting one for step
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 5e-4  # decoupled for adamw, L2 for sgd
    # schedule
    scheduler: str = "onecycle"  # "onecycle" (stepped per batch) | "step" (stepped per epoch)
    step_size: int = 2  # step only: epochs between decays
    gamma: float = 0.1  # step only: the decay factor
    pct_start: float = 0.25  # onecycle only: the fraction of steps spent warming up
    div_factor: float = 10.0  # onecycle only: the warm-up starts at lr / div_factor
    final_div_factor: float = 100.0  # onecycle only: it ends at lr / div_factor / final_div_factor
    # loss
    label_smoothing: float = 0.1  # 0 gives the seed's plain nll loss
    # data pipeline
    pipeline: str = "resident"  # "resident" (on-device tensors + affine) | "loader" (seed DataLoader + PIL)
    num_workers: int = 2  # loader only: DataLoader worker processes
    aug_degrees: float = 15.0  # resident only: rotation, +- degrees
    aug_scale: float = 0.1  # resident only: scale 1 +- this
    aug_translate: float = 2.0  # resident only: shift, +- pixels
    limit_train: int | None = None  # train on the first N training images only (None: all 60,000)
    limit_test: int | None = None  # evaluate on the first N test images only (None: all 10,000)
    # execution
    amp: str = "auto"  # "auto" (bf16 where it is faster) | "bf16" | "off"
    channels_last: bool = True  # NHWC activations: faster convolutions on CPU and GPU
    compile: bool = False  # torch.compile the model (measured slower here; see README)
    cuda_graphs: str = "auto"  # "auto" (on CUDA with the resident pipeline) | "on" | "off"
    keep_cpu_buffers: bool = True  # CPU: glibc keeps large buffers instead of mmap/munmap per step (runtime)
    eval_batch_size: int = 2000  # test images per evaluation batch
    device: str = "auto"  # "auto" (cuda, then mps, then cpu) | "cpu" | "cuda" | "mps"
    seed: int = 1  # every random choice of the run derives from it

    def validate(self) -> Recipe:
        """Raise UserError on settings no run can use."""
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1 (got {self.epochs})"),
            (self.batch_size >= 1, f"batch size must be >= 1 (got {self.batch_size})"),
            (self.eval_batch_size >= 1, f"eval batch size must be >= 1 (got {self.eval_batch_size})"),
            (self.lr > 0, f"learning rate must be > 0 (got {self.lr})"),
            (self.optimizer in ("adamw", "sgd"), f"unknown optimizer {self.optimizer!r} (adamw, sgd)"),
            (self.scheduler in ("onecycle", "step"), f"unknown scheduler {self.scheduler!r} (onecycle, step)"),
            (self.pipeline in ("resident", "loader"), f"unknown pipeline {self.pipeline!r} (resident, loader)"),
            (self.amp in ("auto", "bf16", "off"), f"unknown amp {self.amp!r} (auto, bf16, off)"),
            (self.cuda_graphs in ("auto", "on", "off"), f"unknown cuda_graphs {self.cuda_graphs!r} (auto, on, off)"),
            (self.limit_train is None or self.limit_train >= 1, f"limit-train must be >= 1 (got {self.limit_train})"),
            (self.limit_test is None or self.limit_test >= 1, f"limit-test must be >= 1 (got {self.limit_test})"),
            (self.num_workers >= 0, f"num workers must be >= 0 (got {self.num_workers})"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """Read a recipe.json; unreadable JSON or a non-object is a UserError naming the file."""
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read {path}: {e}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path} does not hold a recipe (a JSON object)")
        return cls(**{k: v for k, v in data.items() if k in fields})

    def describe(self) -> str:
        """One `key=value` line per setting, for the start of a run's log."""
        return "\n".join(f"  {k:<17} {v}" for k, v in dataclasses.asdict(self).items())


# The seed's recipe, faithfully: SGD(0.01, momentum 0.9), StepLR(2, 0.1), batch 1024, 5 epochs, nll loss,
# DataLoader with RandomApply(CenterCrop(22), p=0.1) + Resize(28) + RandomRotation(15), fp32.
SEED = Recipe(
    name="seed",
    epochs=5,
    batch_size=1024,
    optimizer="sgd",
    lr=0.01,
    momentum=0.9,
    nesterov=False,
    weight_decay=0.0,
    scheduler="step",
    step_size=2,
    gamma=0.1,
    label_smoothing=0.0,
    pipeline="loader",
    amp="off",
    channels_last=False,
    cuda_graphs="off",
    keep_cpu_buffers=False,
)

DEFAULT = Recipe()

RECIPES: dict[str, Recipe] = {"seed": SEED, "default": DEFAULT}


def get_recipe(name: str, **overrides) -> Recipe:
    """A copy of the named recipe with `overrides` (those not None) applied and validated."""
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(RECIPES[name], **changes).validate()

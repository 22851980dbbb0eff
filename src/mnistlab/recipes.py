"""Training recipes: `Recipe` holds every setting of a run (declared in recipe_schema); `seed`, `default`… are named."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from mnistlab.errors import UserError, one_line
from mnistlab.recipe_schema import RECIPE_MAX_BYTES, Settings, check_setting, shown


@dataclass
class Recipe(Settings):
    """Everything that decides a training run: the settings of `recipe_schema.Settings` (each declared there once,
    with its default, range and option). Saved as recipe.json in every run folder."""

    def validate(self, source: str | None = None) -> Recipe:
        """Raise a one-line UserError for any setting no run can use: wrong type, out of range, unknown choice.

        `source` (a file name) starts the message, for recipes read from disk."""
        for f in dataclasses.fields(self):
            problem = check_setting(f.name, getattr(self, f.name))
            if problem:
                raise UserError(f"{source + ': ' if source else ''}{f.name} {problem}")
        if self.scheduler == "step" and self.epochs != int(self.epochs):
            raise UserError(
                f"{source + ': ' if source else ''}epochs must be a whole number for the step schedule (it decays "
                f"between epochs), not {self.epochs!r}"
            )
        size = len(self.to_json().encode())  # (its fields checked first: `tuned` is shallow enough to write out)
        if size > RECIPE_MAX_BYTES:
            raise UserError(
                f"{source + ': ' if source else ''}the recipe is {size:,} bytes of JSON, more than the "
                f"{RECIPE_MAX_BYTES:,} a recipe may hold (it is stored in every checkpoint and model card)"
            )
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data, source: str = "the recipe") -> Recipe:
        """A validated Recipe from parsed JSON; missing settings take their defaults, unknown ones are refused."""
        if not isinstance(data, dict):
            raise UserError(f"{source} does not hold a recipe (a JSON object), but a {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"model"})
        if unknown:
            more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
            raise UserError(f"{source}: unknown setting(s) {', '.join(map(shown, unknown[:5]))}{more}")
        if data.get("model", "net") != "net":  # mnistlab 0.1 wrote "model": "net"; no other network exists
            raise UserError(f"{source}: model must be 'net' (the seed's Net), not {shown(data['model'])}")
        return cls(**{k: v for k, v in data.items() if k in fields}).validate(source)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """Read and validate a recipe.json; every problem is a one-line UserError naming the file (and field)."""
        try:
            with open(path, "rb") as f:
                raw = f.read(RECIPE_MAX_BYTES + 1)
            if len(raw) > RECIPE_MAX_BYTES:
                raise UserError(
                    f"{path} is larger than the {RECIPE_MAX_BYTES:,} bytes a recipe file may hold (a recipe is "
                    "about 1.5 KB); pass a recipe written by mnistlab"
                )
            data = json.loads(raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: JSON's, and an over-long integer's
            raise UserError(f"cannot read {path}: {one_line(e)}") from None
        except RecursionError:
            raise UserError(f"cannot read {path}: its JSON nests too deeply to be a recipe") from None
        return cls.from_dict(data, str(path))

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

# The speed recipes, chosen on `--val 10000` (the last 10,000 training images), never on the test set; the
# sweeps and their commands are in benchmarks/results/tuning-2026-11-29/. Each changes only what it lists.
FAST99 = dataclasses.replace(DEFAULT, name="fast99", epochs=0.4, batch_size=64, lr=5e-3, eval_batch_size=500)
FAST994 = dataclasses.replace(DEFAULT, name="fast994", epochs=1, batch_size=128, lr=6e-3, eval_batch_size=500)
BEST = dataclasses.replace(DEFAULT, name="best", epochs=10)

# The bundled model's recipe: `best`'s length with the robust augmentation and outlier exposure. It holds out the
# last 5,000 training images: the evaluations, the temperature and the "not a digit" threshold are fitted on them
# (calibration.py), so the test set is read only once, for the model card.
ROBUST = dataclasses.replace(
    DEFAULT, name="robust", epochs=10, augment="robust", aug_degrees=20.0, aug_scale=0.2, aug_translate=3.0, val=5000
)

RECIPES: dict[str, Recipe] = {
    "seed": SEED,
    "default": DEFAULT,
    "fast99": FAST99,
    "fast994": FAST994,
    "best": BEST,
    "robust": ROBUST,
}

# One line each, for `mnistlab train --help` and the README.
ABOUT: dict[str, str] = {
    "seed": "the original assignment's: SGD, StepLR, batch 1024, 5 epochs, the seed's DataLoader",
    "default": "AdamW + OneCycle, batch 256, 5 epochs: the bundled model's recipe",
    "fast99": "the least time to 99.0% test accuracy",
    "fast994": "the least time to 99.4%",
    "best": "the highest accuracy in at most 10 epochs",
    "robust": "the bundled model's: 10 epochs of corruptions, marks and outlier images; calibrated on 5,000 held out",
}


def get_recipe(name: str, **overrides) -> Recipe:
    """A copy of the named recipe with `overrides` (those not None) applied and validated."""
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(RECIPES[name], **changes).validate()


# --------------------------------------------------------------------------------------------------------------
# The learning rate: a pure function of the recipe and the step, set on the optimizer before every step


def total_steps(recipe: Recipe, steps_per_epoch: int) -> int:
    """The training steps of the whole run: `epochs` (possibly fractional) times the steps of an epoch, at least 1."""
    return max(1, round(recipe.epochs * steps_per_epoch))


def lr_at(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """The learning rate of training step `step` (0 the first), float for float what torch's schedulers give.

    "step": StepLR(step_size, gamma) stepped every epoch: `lr` times gamma once per `step_size` whole epochs,
    multiplied out one decay at a time as StepLR does (0.01 * 0.1 * 0.1, not 0.01 * 0.1 ** 2).
    "onecycle": OneCycleLR(max_lr=lr, total_steps=the run's, cos anneal, no momentum cycle) stepped every batch,
    with the same arithmetic; a run of fewer than 4 steps, too short to warm up and anneal, keeps `lr`.
    """
    if recipe.scheduler == "step":
        lr = recipe.lr
        for _ in range(step // steps_per_epoch // recipe.step_size):
            lr = lr * recipe.gamma
        return lr
    total = total_steps(recipe, steps_per_epoch)
    if total < 4:
        return recipe.lr
    pct_start = min(max(recipe.pct_start, 2.0 / total), 0.5)  # at least one step of warm-up
    initial = recipe.lr / recipe.div_factor
    warm_end, end = float(pct_start * total) - 1, total - 1  # the steps at which the two phases end
    if step <= warm_end:
        start_lr, end_lr, pct = initial, recipe.lr, step / warm_end
    else:
        start_lr, end_lr, pct = recipe.lr, initial / recipe.final_div_factor, (step - warm_end) / (end - warm_end)
    return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)

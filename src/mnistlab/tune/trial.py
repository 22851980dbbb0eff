"""One `mnistlab tune` trial: the objective (val accuracy, or training time to a val accuracy), the recipe a trial
samples from the search space, and the in-process training that reports each evaluation to Optuna for pruning."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from typing import Literal

from mnistlab.errors import UserError, one_line
from mnistlab.recipe_schema import SEARCH_SPACE, Dimension
from mnistlab.recipes import Recipe


@dataclass(frozen=True)
class Objective:
    """What a trial's value is: its last val accuracy (`target` None, maximised), or (`target` an accuracy) its
    training seconds, counted only if its last evaluation reaches `target` (minimised)."""

    target: float | None = None

    @classmethod
    def parse(cls, text: str) -> Objective:
        """'accuracy' or 'time-to:0.988' (a fraction, or a percentage such as 98.8); else a one-line UserError."""
        if text == "accuracy":
            return cls()
        head, _, value = text.partition(":")
        try:
            target = float(value)
        except ValueError:
            target = float("nan")
        target = target / 100 if target > 1 else target
        if head != "time-to" or not 0 < target < 1:
            raise UserError(f"--objective must be accuracy or time-to:VALUE (a val accuracy, e.g. 0.988), not {text!r}")
        return cls(target)

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.target is None else "minimize"

    def __str__(self) -> str:
        return "accuracy" if self.target is None else f"time-to:{self.target:g}"


def sample(trial, start: Recipe, budget: float) -> Recipe:
    """The recipe of `trial`: `start` with the SEARCH_SPACE settings the trial suggests (`epochs` up to `budget`)."""
    changes = {}
    for d in SEARCH_SPACE:
        if d.robust and start.augment != "robust":
            continue
        if d.choices is not None:
            changes[d.name] = trial.suggest_categorical(d.name, list(d.choices))
        elif d.name == "epochs":
            step = budget / 20
            changes[d.name] = round(trial.suggest_float(d.name, d.low * budget, d.high * budget, step=step), 6)
        else:
            changes[d.name] = trial.suggest_float(d.name, d.low, d.high, log=d.log)
    return dataclasses.replace(start, **changes).validate()


def start_params(start: Recipe, budget: float) -> dict:
    """The starting recipe's own values as a trial's params (clipped into the space): the study's first trial."""
    params = {}
    for d in SEARCH_SPACE:
        if d.robust and start.augment != "robust":
            continue
        value = getattr(start, d.name)
        params[d.name] = value if d.choices else _clip(d, value, budget)
    if params["batch_size"] not in SEARCH_SPACE[1].choices:  # type: ignore[operator]
        del params["batch_size"]
    return params


def _clip(d: Dimension, value: float, budget: float) -> float:
    if d.name == "epochs":
        step = budget / 20
        return round(min(max(value, d.low * budget), budget) / step) * step
    return min(max(value, d.low), d.high)


@dataclass(frozen=True)
class Trainer:
    """How every trial trains: `evals_per_epoch` evaluations on val (at most; a short trial has as many as fit its
    length), the data's folders, and the objective."""

    objective: Objective
    budget: float
    evals_per_epoch: int = 5
    data_dir: str | None = None
    mirror: str | None = None

    def __call__(self, trial, start: Recipe) -> float:
        """Train the trial's recipe in this process and return its value; prune it when Optuna says so. A trial
        that fails records its one-line error as the user attr `error`."""
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        trial.set_user_attr("loadavg_start", list(os.getloadavg()))
        try:
            recipe = sample(trial, start, self.budget)
            trial.set_user_attr("recipe", dataclasses.asdict(recipe))
            return self._train(trial, recipe)
        except Exception as e:
            import optuna

            if not isinstance(e, optuna.TrialPruned):
                trial.set_user_attr("error", one_line(e))
            raise
        finally:
            trial.set_user_attr("loadavg_end", list(os.getloadavg()))

    def _train(self, trial, recipe: Recipe) -> float:
        import optuna

        from mnistlab.train.training import fit

        reported: set[int] = set()
        seconds = 0.0

        def on_record(record: dict) -> None:
            nonlocal seconds
            seconds += record["train_time_s"]
            step = round(record["epoch"] * self.evals_per_epoch)
            if step in reported:  # a fractional end just after an evaluation: the same step for the pruner
                return
            reported.add(step)
            acc = record["test_acc"]
            trial.report(acc if self.objective.target is None else 1 - acc, step)
            if trial.should_prune() or self._cannot_win(trial, seconds, record["epoch"] >= recipe.epochs):
                trial.set_user_attr("val_acc", acc)
                trial.set_user_attr("train_s", seconds)
                raise optuna.TrialPruned(f"pruned at epoch {record['epoch']:.3g}: val {100 * acc:.2f}%")

        parts = max(1, round(self.evals_per_epoch * min(1.0, recipe.epochs)))
        t0 = time.perf_counter()
        run = fit(recipe, evals_per_epoch=parts, on_record=on_record, progress=False, echo=False, **self._data())
        acc = run.history.records[-1]["test_acc"]
        trial.set_user_attr("val_acc", acc)
        trial.set_user_attr("train_s", seconds)
        trial.set_user_attr("wall_s", time.perf_counter() - t0)
        if self.objective.target is None:
            return acc
        if acc < self.objective.target:
            trial.set_user_attr("missed", f"val {100 * acc:.2f}% < {100 * self.objective.target:.2f}%")
            raise optuna.TrialPruned(f"did not reach {self.objective}: val {100 * acc:.2f}%")
        return seconds

    def _cannot_win(self, trial, seconds: float, last: bool) -> bool:
        """time-to: a trial already slower than the best so far cannot beat it (its last evaluation may yet
        finish it)."""
        if self.objective.target is None or last:
            return False
        try:
            best = trial.study.best_value
        except ValueError:  # no trial has finished yet
            return False
        return seconds >= best

    def _data(self) -> dict:
        return {"data_dir": self.data_dir, "mirror": self.mirror}

"""The training loop: `fit` trains a recipe (or resumes a run) over the global step, evaluating and checkpointing at
the intervals it is given."""

from __future__ import annotations

from collections.abc import Callable

from mnistlab.recipes import Recipe
from mnistlab.train import loops
from mnistlab.train.run import Run


def fit(
    recipe: Recipe | None,
    *,
    out=None,
    resume: bool = False,
    evals_per_epoch: int = 1,
    on_record: Callable[[dict], None] | None = None,
    eval_every: int | None = None,
    checkpoint_every: int = 1,
    **kw,
) -> Run:
    """Train `recipe` to the end (or, with `resume`, the run in `out`, whose own recipe is used) and return the Run.

    One loop over the global step: train a step; evaluate when `loops.Intervals` says (`evals_per_epoch` times an
    epoch, or every `eval_every` steps of one, and at its end; `on_record` sees every record); checkpoint (with
    `out`: checkpoint.safetensors, then metrics.jsonl) every `checkpoint_every` epochs and at the end. With `out`
    the run folder also gets recipe.json, train.log and, at the end, model.safetensors. `kw`: data_dir, mirror,
    progress, echo."""
    if resume:
        run = Run.resume(out, **kw)
    elif recipe is None:
        raise ValueError("fit needs a recipe, or resume=True and the run folder in out")
    else:
        run = Run.create(recipe, out, **kw)
    when = loops.Intervals(run.steps_per_epoch, run.total_steps, evals_per_epoch, eval_every, checkpoint_every)
    try:
        while not run.done:
            run.train_step()
            if when.evaluates(run.step):
                record = run.evaluate()
                if on_record is not None:
                    on_record(record)
            if when.checkpoints(run.step):
                run.save()
        run.export()
    finally:
        run.release()  # the run folder's lock: another process may resume it now
    return run

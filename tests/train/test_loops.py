"""loops.py: when a run evaluates and checkpoints, the meter behind the seed's bar, the learning rate put on the
optimizer."""

from __future__ import annotations

import pytest
import torch

from mnistlab.train.loops import Intervals, set_lr


def _when(**kw) -> tuple[list[int], list[int]]:

    when = Intervals(**kw)
    steps = range(1, when.total_steps + 1)
    return [s for s in steps if when.evaluates(s)], [s for s in steps if when.checkpoints(s)]


def test_intervals_in_steps_and_epochs():
    # 8 steps an epoch: 3 evaluations an epoch are its parts of 3, 3 and 2 steps
    assert _when(steps_per_epoch=8, total_steps=16, evals_per_epoch=3) == ([3, 6, 8, 11, 14, 16], [8, 16])
    # every 5 steps of an epoch, and at its end; a fractional last epoch (13 = 1.625 epochs) ends the run
    assert _when(steps_per_epoch=8, total_steps=13, eval_every=5) == ([5, 8, 13], [8, 13])
    assert _when(steps_per_epoch=4, total_steps=20, checkpoint_every=2) == ([4, 8, 12, 16, 20], [8, 16, 20])
    # more evaluations than an epoch has steps: one after each step
    assert _when(steps_per_epoch=2, total_steps=3, evals_per_epoch=5) == ([1, 2, 3], [2, 3])


def test_meter_sums_its_span_and_shows_the_seeds_bar(capsys):
    from mnistlab.train.loops import Meter, train_line

    meter = Meter(torch.device("cpu"), 10, first=4, progress=True)
    for loss, correct in ((1.0, 3), (3.0, 1)):
        meter.add(torch.tensor(loss), torch.tensor(correct), 4)
    res = meter.close()
    assert (res.loss, res.accuracy, res.images, res.last_loss, res.batches) == (2.0, 0.5, 8, 3.0, 2)
    assert "Train: Loss=3.0000 Batch_id=5 Accuracy=50.00" in capsys.readouterr().err  # batches 4 and 5 of epoch
    assert train_line(res, 5) == "Train: Loss=3.0000 Batch_id=5 Accuracy=50.00"


def test_set_lr_puts_the_rate_on_every_group_and_into_tensor_rates():
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": torch.tensor(0.1)}], lr=0.1)
    set_lr(opt, 0.02)
    plain, tensor = (g["lr"] for g in opt.param_groups)
    assert (
        plain == 0.02 and torch.is_tensor(tensor) and float(tensor) == pytest.approx(0.02)
    )  # (read in place by a CUDA graph)

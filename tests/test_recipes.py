"""recipes.lr_at: the learning rate as a pure function of the step, float for float torch's StepLR and OneCycleLR."""

import pytest
import torch

from mnistlab.recipes import SEED, get_recipe, lr_at, total_steps


def _torch_lrs(recipe, steps_per_epoch: int) -> list[float]:
    """The learning rate of every step of a run, as the torch scheduler that a recipe used to build gives it."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    total = total_steps(recipe, steps_per_epoch)
    lrs = []
    if recipe.scheduler == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=recipe.step_size, gamma=recipe.gamma)
        for step in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if (step + 1) % steps_per_epoch == 0:
                sched.step()  # StepLR is stepped once an epoch
        return lrs
    if total < 4:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=recipe.lr,
            total_steps=total,
            pct_start=min(max(recipe.pct_start, 2.0 / total), 0.5),
            div_factor=recipe.div_factor,
            final_div_factor=recipe.final_div_factor,
            cycle_momentum=False,
        )
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_the_seed_recipe_decays_as_steplr_bit_for_bit():
    recipe = get_recipe("seed")
    spe = 59  # the seed's 60,000 images in batches of 1024
    ours = [lr_at(recipe, step, spe) for step in range(total_steps(recipe, spe))]
    assert ours == _torch_lrs(recipe, spe)  # every step, exactly
    per_epoch = [ours[e * spe] for e in range(SEED.epochs)]
    assert per_epoch == [0.01, 0.01, 0.001, 0.001, 0.0001]
    assert all(ours[e * spe : (e + 1) * spe] == [per_epoch[e]] * spe for e in range(SEED.epochs))


@pytest.mark.parametrize(
    "overrides, steps_per_epoch",
    [
        ({}, 235),  # the default recipe on all of MNIST
        ({}, 8),  # the short runs of the tests
        (dict(epochs=1.6), 10),  # a fractional epoch: 16 steps
        (dict(epochs=0.4, lr=5e-3), 938),  # fast99's length
        (dict(epochs=10, pct_start=0.3, div_factor=25.0, final_div_factor=1e4), 7),
        (dict(epochs=1), 5),  # pct_start raised to 2 steps of warm-up
        (dict(epochs=1), 3),  # too short for a cycle: the peak rate throughout
        (dict(epochs=0.01), 10),  # a single step
    ],
)
def test_onecycle_is_torchs_bit_for_bit(overrides, steps_per_epoch):
    recipe = get_recipe("default", **overrides)
    ours = [lr_at(recipe, step, steps_per_epoch) for step in range(total_steps(recipe, steps_per_epoch))]
    assert ours == _torch_lrs(recipe, steps_per_epoch)


@pytest.mark.parametrize("overrides", [dict(epochs=7, step_size=3, gamma=0.5), dict(epochs=4, lr=0.1, gamma=0.3)])
def test_other_step_schedules_are_torchs_bit_for_bit(overrides):
    recipe = get_recipe("seed", **overrides)
    ours = [lr_at(recipe, step, 6) for step in range(total_steps(recipe, 6))]
    assert ours == _torch_lrs(recipe, 6)


def test_fractional_epochs_are_rounded_to_whole_steps():
    assert total_steps(get_recipe("default", epochs=1.6), 10) == 16
    assert total_steps(get_recipe("default", epochs=0.33), 10) == 3
    assert total_steps(get_recipe("default", epochs=0.01), 10) == 1  # at least one step

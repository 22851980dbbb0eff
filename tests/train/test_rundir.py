"""rundir.RunDir: what may change between a run and its resume, and how the folder is brought in line."""

import dataclasses

import pytest
import torch

from mnistlab.errors import UserError
from mnistlab.recipes import get_recipe
from mnistlab.store import checkpoints
from mnistlab.train.rundir import RunDir

HISTORY = [
    dict(epoch=1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5, lr=0.01, train_time_s=1.0, imgs_per_s=9.0)
]


def _folder(tmp_path, recipe) -> RunDir:
    """A run folder claimed by `recipe` with a checkpoint after epoch 1 (of a stand-in model)."""
    folder = RunDir(tmp_path / "run")
    folder.claim(recipe)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    folder.save_checkpoint(
        model=model, optimizer=opt, epoch=1, step=4, history=HISTORY, recipe=dataclasses.asdict(recipe)
    )
    return folder


def test_a_steplr_run_may_be_lengthened_and_moved(tmp_path):
    recipe = get_recipe("seed", epochs=3, device="cpu")
    folder = _folder(tmp_path, recipe)
    resumed, _, meta = folder.resume_recipe(epochs=5)
    assert resumed == dataclasses.replace(recipe, epochs=5) and meta["step"] == 4
    folder.resumed(HISTORY, dataclasses.replace(resumed, device="cuda", world_size=2))
    assert folder.load_recipe() == dataclasses.replace(recipe, epochs=5, world_size=2)  # its own device kept


def test_a_onecycle_run_keeps_its_length(tmp_path):
    folder = _folder(tmp_path, get_recipe("default", epochs=2, device="cpu"))
    assert folder.resume_recipe()[0].epochs == 2
    with pytest.raises(UserError, match="cannot change --epochs when resuming: .* 2-epoch OneCycle"):
        folder.resume_recipe(epochs=3)


def test_a_recipe_edited_by_hand_is_refused(tmp_path):
    recipe = get_recipe("default", epochs=2, device="cpu")
    folder = _folder(tmp_path, recipe)
    folder.save_recipe(dataclasses.replace(recipe, lr=0.1))
    with pytest.raises(UserError, match=r"no longer matches the run's checkpoint \(lr 0.003 -> 0.1\)"):
        folder.resume_recipe()
    folder.check_unchanged(dataclasses.replace(recipe, device="cuda", world_size=4), recipe)  # these may differ


def test_a_restarted_worker_group_reclaims_its_own_folder(tmp_path, monkeypatch):
    recipe = get_recipe("default", device="cpu")
    folder = RunDir(tmp_path / "run")
    folder.claim(recipe)
    assert not folder.restarted_claim()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert folder.restarted_claim() and folder.holds_recipe(recipe)
    assert not folder.holds_recipe(dataclasses.replace(recipe, seed=2))
    (folder / checkpoints.CHECKPOINT).write_bytes(b"")
    assert not folder.restarted_claim()  # a checkpoint: resume it instead


def test_claiming_again_starts_the_tensorboard_events_over(tmp_path):
    recipe = get_recipe("default", device="cpu")
    folder = RunDir(tmp_path / "run")
    folder.claim(recipe)
    (folder / RunDir.TENSORBOARD).mkdir()
    (folder / RunDir.TENSORBOARD / "events.out.tfevents.1.host.1.0").write_bytes(b"steps 1 to 3")
    folder.claim(recipe, again=True)  # a worker group restarted before its first checkpoint
    assert not (folder / RunDir.TENSORBOARD).exists() and (folder / RunDir.RECIPE).is_file()

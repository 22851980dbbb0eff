"""checkpoints: a run's checkpoint holds its step and no scheduler; older checkpoints still resume; damage is named."""

import pytest
import torch

from mnistlab.errors import UserError
from mnistlab.recipes import get_recipe
from mnistlab.store import checkpoints
from mnistlab.train.run import Run
from mnistlab.train.training import fit

ONE_EPOCH = [
    dict(epoch=1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5, lr=0.01, train_time_s=1.0, imgs_per_s=9.0)
]


def _tiny():
    return get_recipe("default", epochs=2, limit_train=256, limit_test=128, batch_size=64, device="cpu")


def _save(path, **meta_changes):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    checkpoints.save_checkpoint(path, model=model, optimizer=opt, epoch=1, step=4, history=ONE_EPOCH, recipe={})
    if meta_changes:
        tensors, meta = checkpoints.read_safetensors(path)
        checkpoints.atomic_save(tensors, path, {**meta, **meta_changes})


def test_a_checkpoint_holds_the_step_and_no_scheduler(tmp_path):
    _save(tmp_path / "c.safetensors")
    _, meta = checkpoints.read_checkpoint(tmp_path / "c.safetensors")
    assert (meta["epoch"], meta["step"]) == (1, 4) and "scheduler" not in meta


@pytest.mark.parametrize("step", ["4", 0, 1.5, True])
def test_a_damaged_step_is_named(tmp_path, step):
    _save(tmp_path / "c.safetensors", step=step)
    with pytest.raises(UserError, match="damaged: its step is not a whole number"):
        checkpoints.read_checkpoint(tmp_path / "c.safetensors")


def _trained_and_cut(tmp_path, quiet: dict):
    """A run of `_tiny()` trained whole (tmp_path/ref), and the same recipe stopped after epoch 1 (tmp_path/cut):
    (the whole run, the path of the cut run's checkpoint)."""
    ref = fit(_tiny(), out=tmp_path / "ref", **quiet)
    cut = Run.create(_tiny(), tmp_path / "cut", **quiet)
    cut.train_epoch()
    cut.evaluate()
    cut.save()
    cut.release()  # as the process's end would: the folder's lock
    return ref, tmp_path / "cut" / checkpoints.CHECKPOINT


def test_a_checkpoint_written_with_a_torch_scheduler_resumes_bit_identically(tmp_path, data_dir, mirror):
    """Checkpoints from before the step was stored: no step, a OneCycleLR state, its keys in the param groups."""
    quiet = dict(data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    ref, path = _trained_and_cut(tmp_path, quiet)
    tensors, meta = checkpoints.read_safetensors(path)
    del meta["step"]
    meta["scheduler"] = {"total_steps": 8, "last_epoch": 4, "_last_lr": [0.003]}
    for group in meta["optimizer"]["param_groups"]:
        group.update(initial_lr=0.0003, max_lr=0.003, min_lr=3e-06)
    checkpoints.atomic_save(tensors, path, meta)
    resumed = fit(None, out=tmp_path / "cut", resume=True, **quiet)
    assert resumed.step == 8 and [r["epoch"] for r in resumed.history.records] == [1, 2]
    for k, v in ref.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_a_checkpoint_whose_step_counts_other_epochs_resumes_from_its_epoch_bit_identically(tmp_path, data_dir, mirror):
    """A run moved from a device whose epochs are a batch longer (a CUDA graph drops the last, smaller batch where
    the CPU keeps it): its saved step would land inside an epoch here, so the run continues from its epoch's end."""
    quiet = dict(data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    ref, path = _trained_and_cut(tmp_path, quiet)
    tensors, meta = checkpoints.read_safetensors(path)
    assert (meta["epoch"], meta["step"]) == (1, 4)  # 256 images in batches of 64
    checkpoints.atomic_save(tensors, path, {**meta, "step": 5})  # epoch 1 in 5-batch epochs
    resumed = Run.resume(tmp_path / "cut", **quiet)
    assert (resumed.step, resumed.epoch, resumed.saved_epoch) == (4, 1, 1)
    while not resumed.done:
        resumed.train_epoch()
        resumed.evaluate()
    assert [r["epoch"] for r in resumed.history.records] == [1, 2]
    assert resumed.history.records[-1]["lr"] == ref.history.records[-1]["lr"]
    for k, v in ref.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    resumed.release()


def test_the_epoch_of_a_checkpoint_is_read_from_its_header(tmp_path):
    _save(tmp_path / "c.safetensors")
    assert checkpoints.checkpoint_epoch(tmp_path / "c.safetensors") == 1
    assert checkpoints.checkpoint_epoch(tmp_path / "none.safetensors") == 0
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    assert checkpoints.checkpoint_epoch(tmp_path / "bad.safetensors") == 0
    checkpoints.atomic_save({"a": torch.zeros(1)}, tmp_path / "empty.safetensors", None)
    assert checkpoints.checkpoint_epoch(tmp_path / "empty.safetensors") == 0

"""runcard.py: what a run says when it starts and ends, and its message when the loss stops being finite."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from mnistlab.recipes import get_recipe
from mnistlab.train import runcard


def fake_run(**kw):
    """The attributes runcard reads from a `Run`, without training one."""
    world = SimpleNamespace(distributed=False, world_size=1)
    base = dict(recipe=get_recipe("default"), world=world, device=torch.device("cpu"), dtype=None, graphs=False,
                init_note=None, notes=[], folder=None, saved_epoch=0, epoch=2, step=9, history=None)  # fmt: skip
    return SimpleNamespace(**(base | kw))


def test_start_lines_name_the_recipe_device_and_notes():
    lines = runcard.start_lines(fake_run(notes=["CUDA graphs are off"], init_note="started from w.safetensors"))
    assert lines[0].startswith("mnistlab recipe 'default' on cpu (amp=None, cuda_graphs=False, torch ")
    assert "started from w.safetensors" in lines and "CUDA graphs are off" in lines


def test_summary_counts_epochs_in_words():
    records = [{"epoch": 1, "test_acc": 0.989, "train_time_s": 12.25}]
    run = fake_run(history=SimpleNamespace(records=records))
    assert runcard.summary(run) == "test accuracy 98.90% after 1 epoch, 12.2 s of training"
    records.append({"epoch": 2, "test_acc": 0.99, "train_time_s": 10.0})
    assert runcard.summary(run).endswith("after 2 epochs, 22.2 s of training")


def test_non_finite_says_where_the_last_good_checkpoint_is(tmp_path):
    assert "kept in" not in runcard.non_finite(fake_run(), float("nan"))
    kept = runcard.non_finite(fake_run(folder=tmp_path, saved_epoch=1), float("inf"))
    assert f"the last good checkpoint (epoch 1) is kept in {tmp_path}" in kept and "lower --lr" in kept
    assert "nothing was checkpointed yet" in runcard.non_finite(fake_run(folder=tmp_path), float("nan"))
    assert "test loss became nan in epoch 2 (step 9)" in runcard.non_finite(fake_run(), float("nan"), "test loss")


def test_export_without_a_folder_or_a_path_writes_nothing():
    assert runcard.export(fake_run()) is None

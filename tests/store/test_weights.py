"""weights.py: reading trained weights safely, loading them into a Net, and starting a run from them."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from mnistlab.errors import UserError
from mnistlab.model import Net
from mnistlab.store.weights import bundled_weights, load_model, read_weights, transfer_weights


def test_the_bundled_weights_load_into_the_seed_net():
    model, card = load_model(bundled_weights())
    assert isinstance(model, Net) and not model.training
    assert sum(p.numel() for p in model.parameters()) == 593_200 and card["recipe"]["name"] == "robust"


def test_weights_that_do_not_fit_are_refused(tmp_path):
    state = Net().state_dict()
    save_file({k: v.contiguous() for k, v in state.items() if k != "fc2.bias"}, tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="1 missing"):
        load_model(tmp_path / "missing.safetensors")
    nan = {k: v.clone().contiguous() for k, v in state.items()}
    nan["fc1.weight"][0, 0] = float("nan")
    save_file(nan, tmp_path / "nan.safetensors")
    with pytest.raises(UserError, match="NaN or infinite"):
        load_model(tmp_path / "nan.safetensors")
    torch.save(state, tmp_path / "pickle.pt")
    with pytest.raises(UserError, match="not a valid safetensors"):
        read_weights(tmp_path / "pickle.pt")
    with pytest.raises(UserError, match="does not exist"):
        read_weights(tmp_path / "nowhere")


def test_transfer_weights_keeps_a_new_head(tmp_path):
    ten = Net()
    save_file({k: v.contiguous() for k, v in ten.state_dict().items()}, tmp_path / "w.safetensors")
    five = Net(num_classes=5)
    head = five.fc2.weight.detach().clone()
    line = transfer_weights(five, tmp_path / "w.safetensors")
    assert "10-class head replaced by a new 5-class one" in line
    assert torch.equal(five.fc2.weight, head) and torch.equal(five.fc1.weight, ten.fc1.weight)

"""mnistlab.train.cuda_graph: the training step captured in a CUDA graph (its checks run
anywhere, its replay on CUDA)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mnistlab.data.loaders import DeviceLoader
from mnistlab.model import Net
from mnistlab.train.cuda_graph import CUDAGraphStep


def setup(device: str, capturable: bool):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=g)
    loader = DeviceLoader(images, torch.arange(64) % 10, 16, device)
    model = Net().to(device)
    lr = torch.tensor(1e-3, device=device) if capturable else 1e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, capturable=capturable)

    def step(x, y):
        out = model(x)
        loss = F.nll_loss(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
        return loss.detach(), (out.argmax(1) == y).sum()

    return loader, model, opt, step


def test_an_optimizer_with_a_float_lr_is_refused():
    loader, model, opt, step = setup("cpu", capturable=False)
    with pytest.raises(ValueError, match="capturable=True"):
        CUDAGraphStep(step, loader, model, opt)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_capture_leaves_the_weights_as_they_were_and_replays_train():
    loader, model, opt, step = setup("cuda", capturable=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graphed = CUDAGraphStep(step, loader, model, opt)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the warm-up was undone
    idx = torch.arange(16, device="cuda")
    losses = [float(graphed(idx)[0]) for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]  # the same batch, learnt
    assert not torch.equal(before["fc1.weight"], model.state_dict()["fc1.weight"])
    opt.param_groups[0]["lr"] = 0.0  # a scheduler assigning a float: copied into the captured tensor
    frozen = model.fc1.weight.detach().clone()
    graphed(idx)
    assert torch.is_tensor(opt.param_groups[0]["lr"]) and torch.equal(frozen, model.fc1.weight.detach())

"""CUDA graphs: the training step of the device-resident pipeline (gather, augment, forward, backward, AdamW)
captured once and replayed, so a step costs one launch instead of a few hundred."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from mnistlab.data.loaders import DeviceLoader


class CUDAGraphStep:
    """`loops.train_step` on `loader.batch(idx)`, captured in a CUDA graph; call it as `step(idx)`.

    The optimiser must be capturable with its learning rate held in a tensor (see build.build_optimizer): the run
    fills that tensor with `lr_at(step)` before each call (`Run._set_lr`); a caller that assigns a float to
    `param_group["lr"]` instead has it copied into the tensor.
    Warm-up steps run on a side stream before capture (cuDNN/cuBLAS choose their kernels, AdamW creates its
    state); their effect on the weights and the optimiser state is undone before the first real step, so a
    resumed optimiser keeps its state. Augmentation inside the graph draws from the default CUDA generator,
    whose Philox offsets advance safely with every replay.
    """

    def __init__(
        self,
        step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        loader: DeviceLoader,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        warmup: int = 3,
    ):
        self.optimizer = optimizer
        device = loader.device
        self.idx = torch.arange(loader.batch_size, device=device) % max(len(loader.labels), 1)
        self.lr_tensors = [g["lr"] for g in optimizer.param_groups]
        if not all(torch.is_tensor(t) for t in self.lr_tensors):
            raise ValueError("CUDAGraphStep needs an optimizer whose lr is a tensor (capturable=True)")

        def body():
            return step(*loader.batch(self.idx))

        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        saved_opt = {
            p: {k: t.clone() for k, t in st.items() if torch.is_tensor(t)} for p, st in optimizer.state.items()
        }
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                body()
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(saved[k])
            for p, state in optimizer.state.items():  # back to the state before warm-up (resumed or fresh)
                for k, t in state.items():
                    if torch.is_tensor(t):
                        old = saved_opt.get(p, {}).get(k)
                        t.copy_(old) if old is not None else t.zero_()
        optimizer.zero_grad(set_to_none=True)  # backward inside the capture allocates .grad from the graph pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss, self.correct = body()

    def __call__(self, idx: torch.Tensor):
        for group, t in zip(self.optimizer.param_groups, self.lr_tensors):
            if group["lr"] is not t:  # a float was assigned: keep the captured tensor, with that value
                t.fill_(float(group["lr"]))
                group["lr"] = t
        self.idx.copy_(idx, non_blocking=True)
        self.graph.replay()
        return self.loss, self.correct

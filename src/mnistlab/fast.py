"""CUDA graphs for the resident pipeline: the whole training step (gather, augment, forward, backward, AdamW)
captured once and replayed, so a step costs one launch instead of a few hundred."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn as nn

from mnistlab.data import DeviceLoader
from mnistlab.utils import autocast


class GraphBatches:
    """Iterate a DeviceLoader as (indices, labels) only: the graph does the gathering and augmentation."""

    def __init__(self, loader: DeviceLoader):
        self.loader = loader

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.loader.iter_indices()


class GraphedStep:
    """A training step captured in a CUDA graph; call it as `step(indices, labels)` -> (loss, correct).

    The optimiser must be capturable with its learning rate held in a tensor (see trainer.build_optimizer);
    a scheduler may change `param_group["lr"]` between calls, the new value is copied into that tensor.
    Warm-up steps run on a side stream before capture (cuDNN/cuBLAS choose their kernels, AdamW creates its
    state); their effect on the weights and the optimiser state is undone before the first real step, so a
    resumed optimiser keeps its state.
    Random augmentation inside the graph draws from the default CUDA generator (graph-safe Philox offsets).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: Callable,
        dtype: torch.dtype | None,
        loader: DeviceLoader,
        warmup: int = 3,
    ):
        self.model, self.optimizer, self.criterion, self.dtype, self.loader = model, optimizer, criterion, dtype, loader
        device = loader.device
        self.idx = torch.arange(loader.batch_size, device=device) % max(len(loader.labels), 1)
        self.lr_tensors = [g["lr"] for g in optimizer.param_groups]
        if not all(torch.is_tensor(t) for t in self.lr_tensors):
            raise ValueError("GraphedStep needs an optimizer whose lr is a tensor (capturable=True)")
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        saved_opt = {
            p: {k: t.clone() for k, t in st.items() if torch.is_tensor(t)} for p, st in optimizer.state.items()
        }
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                optimizer.zero_grad(set_to_none=True)
                self._body()
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
            self.loss, self.correct = self._body()

    def _body(self):
        ld = self.loader
        x = ld.images.index_select(0, self.idx)
        y = ld.labels.index_select(0, self.idx)
        if ld.augment is not None:
            x = ld.augment(x)
            if ld.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, self.dtype):
            out = self.model(x)
        loss = self.criterion(out.float(), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (out.detach().argmax(1) == y).sum()

    def __call__(self, idx: torch.Tensor, target: torch.Tensor):
        for group, t in zip(self.optimizer.param_groups, self.lr_tensors):
            if group["lr"] is not t:  # a scheduler that assigned a float: keep the captured tensor
                t.fill_(float(group["lr"]))
                group["lr"] = t
        self.idx.copy_(idx, non_blocking=True)
        self.graph.replay()
        return self.loss, self.correct

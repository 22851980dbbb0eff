"""The training step, one epoch of training with the seed's progress bar, one evaluation pass, and History."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from mnistlab.runtime import autocast, sync


def train_step(model: nn.Module, optimizer, criterion: Callable, x: torch.Tensor, y: torch.Tensor, dtype=None):
    """The training step: (loss, number correct) as 0-d device tensors, without a host sync.

    The one step of every path: the eager loops call it, and `cuda_graph.CUDAGraphStep` captures and replays it.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast(x.device, dtype):
        output = model(x)
    loss = criterion(output.float(), y)
    loss.backward()
    optimizer.step()
    return loss.detach(), (output.detach().argmax(dim=1) == y).sum()


@dataclass
class EpochResult:
    loss: float  # mean training loss over the epoch
    accuracy: float  # fraction 0-1 of training images classified right (on the augmented batch)
    images: int
    seconds: float  # training time of the epoch (device-synchronised), evaluation excluded
    last_loss: float  # loss of the last batch, as the progress bar shows it
    batches: int


def train_epoch(
    model: nn.Module,
    device: torch.device,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    *,
    criterion: Callable = F.nll_loss,
    dtype: torch.dtype | None = None,
    step: Callable | None = None,
    progress: bool = True,
    log_every: int = 1,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EpochResult:
    """Train one epoch; show the seed's bar `Train: Loss=… Batch_id=… Accuracy=…`.

    `train_loader` yields batches whose last item is the labels (or, for a CUDA graph, the indices).
    `scheduler`, if given, is stepped after every batch (OneCycle); step per-epoch schedulers yourself.
    `step(*batch)` replaces the eager `train_step` (a CUDA graph does); `log_every` > 1 refreshes the bar
    (and so syncs the device) only every that many batches. `all_reduce` (sums a tensor over the training
    processes, in place) makes the result the whole world's: loss and accuracy over every process's images.
    """
    model.train()
    if step is None:
        step = lambda x, y: train_step(model, optimizer, criterion, x, y, dtype)  # noqa: E731
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    n_batches = len(train_loader)
    bar = tqdm(train_loader, disable=not progress, dynamic_ncols=True, mininterval=0.5)
    sync(device)
    t0 = time.perf_counter()
    for batch_idx, batch in enumerate(bar):
        batch = [t.to(device, non_blocking=True) for t in batch]
        loss, corr = step(*batch)
        if scheduler is not None:
            scheduler.step()
        n = batch[-1].shape[0]
        loss_sum += loss * n
        correct += corr
        seen += n
        if progress and (batch_idx % log_every == 0 or batch_idx == n_batches - 1):
            acc = 100 * correct.item() / seen
            bar.set_description(
                f"Train: Loss={loss.item():0.4f} Batch_id={batch_idx} Accuracy={acc:0.2f}", refresh=False
            )
    sync(device)
    seconds = time.perf_counter() - t0
    bar.close()
    last = loss.item() if seen else float("nan")
    if all_reduce is not None:  # sums over the processes; the last loss is the mean of their last batches'
        values = [loss_sum.item(), correct.item(), seen, last if seen else 0.0, 1.0 if seen else 0.0]
        sums = all_reduce(torch.tensor(values, dtype=torch.float64, device=device))
        total_loss, total_correct, seen, last_sum, ranks = sums.tolist()
        loss_sum, correct, seen = torch.tensor(total_loss), torch.tensor(int(total_correct)), int(seen)
        last = last_sum / ranks if ranks else float("nan")
    seen = max(seen, 1)
    return EpochResult(loss_sum.item() / seen, correct.item() / seen, seen, seconds, last, n_batches)


def train_line(res: EpochResult) -> str:
    """The seed's progress-bar text for a finished epoch."""
    return f"Train: Loss={res.last_loss:0.4f} Batch_id={res.batches - 1} Accuracy={100 * res.accuracy:0.2f}"


@torch.no_grad()
def evaluate(
    model: nn.Module,
    device: torch.device,
    test_loader: Iterable,
    *,
    dtype: torch.dtype | None = None,
    verbose: bool = True,
) -> tuple[float, int, int]:
    """Evaluate; print the seed's line `Test set: Average loss: …, Accuracy: c/N (p%)`.

    Returns (average nll loss, number correct, number of images). The sums stay on the device until the end.
    """
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    for data, target in test_loader:
        data, target = data.to(device, non_blocking=True), target.to(device, non_blocking=True)
        with autocast(device, dtype):
            output = model(data)
        loss_sum += F.nll_loss(output.float(), target, reduction="sum")
        correct += (output.argmax(dim=1) == target).sum()
        total += target.shape[0]
    avg, c = loss_sum.item() / max(total, 1), int(correct.item())
    if verbose:
        print(test_line(avg, c, total))
    return avg, c, total


def test_line(avg_loss: float, correct: int, total: int) -> str:
    """The seed's evaluation line."""
    return (
        f"Test set: Average loss: {avg_loss:.4f}, Accuracy: {correct}/{total} ({100.0 * correct / max(total, 1):.2f}%)"
    )


test_line.__test__ = False  # a helper, not a pytest test


@torch.no_grad()
def predictions(model: nn.Module, device: torch.device, loader: Iterable, *, dtype=None):
    """(images as given to the model, targets, predicted labels, probabilities) for a whole loader, on the CPU."""
    model.eval()
    xs, ys, ps, probs = [], [], [], []
    for data, target in loader:
        data = data.to(device)
        with autocast(device, dtype):
            out = model(data).float()
        xs.append(data.float().cpu())
        ys.append(target.cpu())
        ps.append(out.argmax(1).cpu())
        probs.append(out.exp().cpu())
    return torch.cat(xs), torch.cat(ys), torch.cat(ps), torch.cat(probs)


@dataclass
class History:
    """Per-evaluation records: epoch, train_loss, train_acc, test_loss, test_acc, lr, train_time_s, imgs_per_s, …"""

    records: list[dict] = field(default_factory=list)

    def add(self, **record) -> dict:
        self.records.append(record)
        return record

    def column(self, key: str) -> list:
        return [r[key] for r in self.records]

    # the seed notebook's four lists, as read-only views of the records
    train_losses = property(lambda self: self.column("train_loss"))
    train_acc = property(lambda self: self.column("train_acc"))
    test_losses = property(lambda self: self.column("test_loss"))
    test_acc = property(lambda self: self.column("test_acc"))

    def __len__(self) -> int:
        return len(self.records)

    def to_jsonl(self) -> str:
        return "".join(json.dumps(r) + "\n" for r in self.records)

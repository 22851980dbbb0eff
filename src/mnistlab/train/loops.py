"""The training step, the seed's progress bar over a span of steps (`Meter`), one evaluation pass, and History."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mnistlab.train.runtime import autocast, sync


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


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Put `lr` on every parameter group (into its tensor where it has one: a CUDA graph reads it from there)."""
    for group in optimizer.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def epoch_batches(loader, epoch: int, *, indices: bool = False) -> Iterator:
    """The batches of `epoch` (its order and augmentation follow from the seed and the epoch), or with `indices`
    their indices alone, as 1-tuples (a CUDA graph gathers and augments the batch inside itself)."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    elif hasattr(getattr(loader, "sampler", None), "set_epoch"):  # the seed's DataLoader, sharded
        loader.sampler.set_epoch(epoch)
    return iter(((i,) for i in loader.iter_indices()) if indices else loader)


@dataclass
class EpochResult:
    """The training numbers of an epoch, or of the part of one between two evaluations."""

    loss: float  # mean training loss over its batches (a record's train_loss)
    accuracy: float  # fraction 0-1 of training images classified right (on the augmented batch)
    images: int
    seconds: float  # training time (device-synchronised), evaluation excluded
    last_loss: float  # loss of the last batch, as the progress bar's Loss= shows it
    batches: int


class Meter:
    """Sums a span of training steps on the device (no host sync) and shows the seed's progress bar over them,
    `Train: Loss=... Batch_id=... Accuracy=...`: Loss= is the last batch's loss, Accuracy= the span's so far.

    The bar counts the epoch: `total` batches, the span starting at batch `first`. It is refreshed, which syncs the
    device, every `log_every` batches and at the end. `close()` gives the span's `EpochResult`."""

    def __init__(self, device: torch.device, total: int, *, first: int = 0, progress: bool = True, log_every: int = 1):
        self.device, self.log_every, self.batch_id = device, log_every, first - 1
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = self.batches = 0
        self.last: torch.Tensor | None = None
        self.bar = tqdm(total=total, initial=first, disable=not progress, dynamic_ncols=True, mininterval=0.5)
        sync(device)
        self.t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        """One step's (loss, number correct), as `train_step` returns them, over its `n` images."""
        self.loss_sum += loss * n
        self.correct += correct
        self.seen += n
        self.last, self.batch_id, self.batches = loss, self.batch_id + 1, self.batches + 1
        if not self.bar.disable and (self.batches - 1) % self.log_every == 0:
            self._describe()
        self.bar.update(1)

    def _describe(self) -> None:
        acc = 100 * self.correct.item() / max(self.seen, 1)
        loss = self.last.item() if self.last is not None else float("nan")
        self.bar.set_description(f"Train: Loss={loss:0.4f} Batch_id={self.batch_id} Accuracy={acc:0.2f}", refresh=False)

    def close(self, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> EpochResult:
        """The span's numbers. `all_reduce` (sums a tensor over the training processes, in place) makes them the
        whole world's: loss and accuracy over every process's images, the last loss the mean of their last ones."""
        sync(self.device)
        seconds = time.perf_counter() - self.t0
        if not self.bar.disable:
            self._describe()
        self.bar.close()
        seen, loss_sum, correct = self.seen, self.loss_sum.item(), self.correct.item()
        last = self.last.item() if self.last is not None else float("nan")
        if all_reduce is not None:
            values = [loss_sum, correct, seen, last if seen else 0.0, 1.0 if seen else 0.0]
            sums = all_reduce(torch.tensor(values, dtype=torch.float64, device=self.device))
            loss_sum, correct, seen, last_sum, ranks = sums.tolist()
            correct, seen = int(correct), int(seen)
            last = last_sum / ranks if ranks else float("nan")
        seen = max(seen, 1)
        return EpochResult(loss_sum / seen, correct / seen, seen, seconds, last, self.batches)


def train_epoch(
    model: nn.Module,
    device: torch.device,
    train_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    criterion: Callable = F.nll_loss,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> EpochResult:
    """Train one epoch of (images, labels) batches with `train_step`, under the seed's bar (the seed's `train`)."""
    model.train()
    meter = Meter(device, len(train_loader), progress=progress)
    for x, y in train_loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss, correct = train_step(model, optimizer, criterion, x, y, dtype)
        meter.add(loss, correct, y.shape[0])
    return meter.close()


def train_line(res: EpochResult, batch_id: int | None = None) -> str:
    """The seed's progress-bar text at the end of a span (`batch_id`: its last batch's index in the epoch)."""
    batch_id = res.batches - 1 if batch_id is None else batch_id
    return f"Train: Loss={res.last_loss:0.4f} Batch_id={batch_id} Accuracy={100 * res.accuracy:0.2f}"


@dataclass(frozen=True)
class Intervals:
    """When a run of `total_steps` steps evaluates and checkpoints, in steps done (its global step).

    It evaluates at the end of each of `evals_per_epoch` near-equal parts of an epoch, or with `eval_every` after
    every that many steps of one, and always at an epoch's end (a fractional last epoch's too). It checkpoints at
    the end of every `checkpoint_every`-th epoch and of the run: epoch boundaries only, since a resumed run
    replays an epoch from its start."""

    steps_per_epoch: int
    total_steps: int
    evals_per_epoch: int = 1
    eval_every: int | None = None
    checkpoint_every: int = 1

    def evaluates(self, step: int) -> bool:
        start = (step - 1) // self.steps_per_epoch * self.steps_per_epoch  # the epoch's first step
        n, i = min(self.steps_per_epoch, self.total_steps - start), step - start  # its steps; how many are done
        if self.eval_every is not None:
            return i % self.eval_every == 0 or i == n
        parts = max(1, min(self.evals_per_epoch, n))  # the parts' ends: k * (n // parts) + min(k, n % parts)
        return any(k * (n // parts) + min(k, n % parts) == i for k in range(1, parts + 1))

    def checkpoints(self, step: int) -> bool:
        epochs, rest = divmod(step, self.steps_per_epoch)
        return step >= self.total_steps or (rest == 0 and epochs % self.checkpoint_every == 0)


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


test_line.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test (pytest reads it)


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
    """Per-evaluation records: epoch, train_loss, train_acc, test_loss, test_acc, lr, train_time_s, imgs_per_s, …

    train_loss and train_acc are the means over the steps trained since the previous record (not the last batch's,
    which the progress bar's Loss= shows); lr is the learning rate of the first of those steps."""

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

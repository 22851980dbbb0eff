"""The train/test loops and small helpers that the notebook and the CLI share."""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from mnistlab.errors import UserError

# --------------------------------------------------------------------------------------------------------------
# Devices, seeds, precision


def get_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; asking for an unavailable device is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} is not available: this torch sees no CUDA GPU (use --device cpu)")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("device 'mps' is not available on this machine (use --device cpu)")
        return torch.device("mps")
    raise UserError(f"unknown device {name!r}; choose from auto, cpu, cuda, mps")


def keep_cpu_buffers() -> bool:
    """Ask glibc to serve large allocations from its heap and keep freed memory (Linux only; else a no-op).

    By default glibc hands every allocation over 32 MiB to mmap and returns it on free, so each CPU training step
    page-faults and zero-fills its large activation buffers afresh. Raising the mmap and trim thresholds lets the
    buffers be reused: +20-25% images/s for the seed Net on a 2-core CPU (see README, Performance). Process-wide;
    returns whether it took effect.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX), which make autocast pay."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a recipe's `amp` setting on `device` (None = full float32)."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for `dtype`, or a no-op when it is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def sync(device: torch.device) -> None:
    """Wait for queued device work (so host clocks time the device honestly)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# --------------------------------------------------------------------------------------------------------------
# History


@dataclass
class History:
    """Per-epoch records: epoch, train_loss, train_acc, test_loss, test_acc, lr, train_time_s, imgs_per_s."""

    records: list[dict] = field(default_factory=list)

    def add(self, **record) -> dict:
        self.records.append(record)
        return record

    def column(self, key: str) -> list:
        return [r[key] for r in self.records]

    @property
    def train_losses(self) -> list[float]:
        return self.column("train_loss")

    @property
    def train_acc(self) -> list[float]:
        return self.column("train_acc")

    @property
    def test_losses(self) -> list[float]:
        return self.column("test_loss")

    @property
    def test_acc(self) -> list[float]:
        return self.column("test_acc")

    def __len__(self) -> int:
        return len(self.records)

    def to_jsonl(self) -> str:
        return "".join(json.dumps(r) + "\n" for r in self.records)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> History:
        return cls([json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()])


# --------------------------------------------------------------------------------------------------------------
# Train and test


@dataclass
class EpochResult:
    loss: float  # mean training loss over the epoch
    accuracy: float  # fraction 0-1 of training images classified right (on the augmented batch)
    images: int
    seconds: float  # training time of the epoch (device-synchronised), evaluation excluded
    last_loss: float  # loss of the last batch, as the progress bar shows it
    batches: int


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, criterion: Callable, dtype: torch.dtype | None):
    """An eager training step: (data, target) -> (loss, number correct), both 0-d device tensors."""

    def step(data: torch.Tensor, target: torch.Tensor):
        with autocast(data.device, dtype):
            output = model(data)
        loss = criterion(output.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        correct = (output.detach().argmax(dim=1) == target).sum()
        return loss.detach(), correct

    return step


def train(
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
) -> EpochResult:
    """Train one epoch; show the seed's bar `Train: Loss=… Batch_id=… Accuracy=…`.

    `scheduler`, if given, is stepped after every batch (OneCycle); step per-epoch schedulers yourself.
    `step` replaces the eager training step (e.g. a CUDA-graph one); `log_every` > 1 refreshes the bar
    (and so syncs the device) only every that many batches.
    """
    model.train()
    step = step or make_step(model, optimizer, criterion, dtype)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    n_batches = len(train_loader)
    bar = tqdm(train_loader, disable=not progress, dynamic_ncols=True, mininterval=0.5)
    sync(device)
    t0 = time.perf_counter()
    for batch_idx, (data, target) in enumerate(bar):
        data, target = data.to(device, non_blocking=True), target.to(device, non_blocking=True)
        loss, corr = step(data, target)
        if scheduler is not None:
            scheduler.step()
        n = target.shape[0]
        loss_sum += loss * n
        correct += corr
        seen += n
        if progress and (batch_idx % log_every == 0 or batch_idx == n_batches - 1):
            acc = 100 * correct.item() / seen
            bar.set_description(f"Train: Loss={loss.item():0.4f} Batch_id={batch_idx} Accuracy={acc:0.2f}")
    sync(device)
    seconds = time.perf_counter() - t0
    bar.close()
    last = loss.item() if seen else float("nan")
    seen = max(seen, 1)
    return EpochResult(loss_sum.item() / seen, correct.item() / seen, seen, seconds, last, n_batches)


def train_line(res: EpochResult) -> str:
    """The seed's progress-bar text for a finished epoch."""
    return f"Train: Loss={res.last_loss:0.4f} Batch_id={res.batches - 1} Accuracy={100 * res.accuracy:0.2f}"


@torch.no_grad()
def test(
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
def get_predictions(model: nn.Module, device: torch.device, loader: Iterable, *, dtype=None):
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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

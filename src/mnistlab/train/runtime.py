"""Where and how a run executes: the device and its set-up, bf16 autocast, seeds, the CPU allocator, device syncs."""

from __future__ import annotations

import contextlib
import platform
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mnistlab.device import get_device
from mnistlab.train import distributed

if TYPE_CHECKING:
    from mnistlab.recipes import Recipe


def place(recipe: Recipe, world: distributed.World) -> tuple[torch.device, torch.dtype | None]:
    """(this process's device for `recipe`, the autocast dtype there), the device set up for training: the process
    group joined if there is one, cuDNN's autotuner on CUDA, and on the CPU glibc's buffers kept if asked."""
    device = distributed.device_for(get_device(recipe.device), world)
    distributed.setup(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif device.type == "cpu" and recipe.keep_cpu_buffers:
        keep_cpu_buffers()
    return device, amp_dtype(recipe.amp, device)


def machine_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU model and the threads torch uses (for model cards and benchmarks)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    """Wait for queued device work (so host clocks time the device honestly)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# --------------------------------------------------------------------------------------------------------------
# Precision


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


# --------------------------------------------------------------------------------------------------------------
# Seeds


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed % 2**64)


# --------------------------------------------------------------------------------------------------------------
# CPU allocator


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

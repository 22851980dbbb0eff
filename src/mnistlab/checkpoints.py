"""Safe, atomic checkpoints: tensors in safetensors (no pickle), everything else as JSON metadata in the same file."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mnistlab.errors import UserError

CHECKPOINT = "checkpoint.safetensors"  # model + optimizer + scheduler + RNG + history, rewritten every epoch
WEIGHTS = "model.safetensors"  # the final weights alone
_META_KEY = "mnistlab"


def atomic_save(tensors: dict[str, torch.Tensor], path: str | Path, meta: dict | None = None) -> None:
    """Write a safetensors file via a temporary file in the same folder, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one in place, never half of one.
    """
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_META_KEY: json.dumps(meta or {}, default=_tensor_to_json)})
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _tensor_to_json(o):
    """Metadata may hold small tensors: a CUDA-graph run keeps its learning rates (and so its schedule's) in them."""
    if torch.is_tensor(o):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} cannot be stored in checkpoint metadata")


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata dict) of a safetensors file; anything else (a pickle, garbage) is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:  # reads the header and tensors; never unpickles
            raw = (f.metadata() or {}).get(_META_KEY, "{}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return tensors, json.loads(raw)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise UserError(
            f"{path} is not a valid safetensors file ({e}); pass a run folder or a .safetensors file "
            "written by mnistlab"
        ) from None


def save_weights(model: nn.Module, path: str | Path, meta: dict | None = None) -> None:
    atomic_save(dict(model.state_dict()), path, meta)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """A model state dict and its metadata from a safetensors file. Pickles are refused, never unpickled."""
    return read_safetensors(path)


# --------------------------------------------------------------------------------------------------------------
# Training state


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"optim/{pid}/{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    groups = []
    for g in sd["param_groups"]:
        g = {k: (v.item() if torch.is_tensor(v) else v) for k, v in g.items()}
        groups.append(g)
    return tensors, {"param_groups": groups}


def _optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim/"):
            _, pid, k = key.split("/", 2)
            state.setdefault(int(pid), {})[k] = v
    groups = meta["param_groups"]
    live = opt.param_groups
    for g, lg in zip(groups, live):
        if torch.is_tensor(lg["lr"]):  # capturable optimisers keep lr as a tensor: keep it one
            g["lr"] = torch.tensor(g["lr"], dtype=lg["lr"].dtype, device=lg["lr"].device)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    for p, st in opt.state.items():  # saved contiguous; a channels_last model's moments must match its strides
        for k, v in st.items():  # (fused AdamW on CUDA insists)
            if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def rng_state(loader_generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    if loader_generator is not None:
        tensors["rng/loader"] = loader_generator.get_state()
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict, loader_generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])
    if loader_generator is not None and "rng/loader" in tensors:
        loader_generator.set_state(tensors["rng/loader"])
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))


def save_checkpoint(
    path,
    *,
    model,
    optimizer,
    scheduler,
    epoch: int,
    history: list[dict],
    recipe: dict,
    loader_generator: torch.Generator | None = None,
) -> None:
    """Everything needed to continue after `epoch`, in one atomically written safetensors file."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt_t, opt_meta = _optimizer_to_flat(optimizer)
    rng_t, rng_meta = rng_state(loader_generator)
    tensors.update(opt_t)
    tensors.update(rng_t)
    meta = {
        "format": 1,
        "epoch": epoch,
        "history": history,
        "recipe": recipe,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_meta,
    }
    atomic_save(tensors, path, meta)


def load_checkpoint(path, *, model, optimizer, scheduler, loader_generator: torch.Generator | None = None) -> dict:
    """Restore model, optimizer, scheduler and RNG states in place; return the metadata (epoch, history, …)."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != 1:
        raise UserError(f"{path} is not an mnistlab training checkpoint")
    model.load_state_dict({k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")})
    _optimizer_from_flat(optimizer, tensors, meta["optimizer"])
    if scheduler is not None and meta["scheduler"] is not None:
        scheduler.load_state_dict(meta["scheduler"])
    restore_rng(tensors, meta["rng"], loader_generator)
    return meta

"""Safe, atomic checkpoints: tensors in safetensors (no pickle), everything else as JSON metadata in the same file."""

from __future__ import annotations

import errno
import json
import math
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mnistlab.errors import UserError, one_line

CHECKPOINT = "checkpoint.safetensors"  # model + optimizer + step + RNG + history, rewritten every epoch
WEIGHTS = "model.safetensors"  # the final weights alone
_META_KEY = "mnistlab"


def atomic_save(tensors: dict[str, torch.Tensor], path: str | Path, meta: dict | None = None) -> None:
    """Write a safetensors file via a temporary file in the same folder, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one in place, never half of one. A full disk is
    a one-line UserError that says how much space was needed where.
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
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        full = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
        if isinstance(e, SafetensorError) and not ("I/O error" in str(e) or "os error" in str(e)):
            # not the disk (a header over safetensors' 100 MB, say): no word of space
            raise UserError(f"cannot write {path}: {one_line(e)}; the previous files are kept") from None
        if isinstance(e, SafetensorError) or full:
            needed = sum(t.numel() * t.element_size() for t in tensors.values())
            raise UserError(f"cannot write {path}: {one_line(e)}; {space_report(path.parent, needed)}") from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def space_report(folder: Path, needed: int | None = None) -> str:
    """'about N MB needed in FOLDER, M MB free there; the previous files are kept' (for a failed write)."""
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:,.1f} MB free there"
    except OSError:
        free = "free space unknown"
    need = f"about {needed / 1e6:,.1f} MB needed in {folder}, " if needed else f"in {folder}: "
    return f"{need}{free}; the previous files are kept"


def _tensor_to_json(o):
    """Metadata may hold small tensors: the state of a torch LR scheduler over a capturable optimizer has some."""
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
        meta = json.loads(raw)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise UserError(
            f"{path} is not a valid safetensors file ({e}); pass a run folder or a .safetensors file "
            "written by mnistlab"
        ) from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} has damaged metadata (a JSON {type(meta).__name__}, not an object)")
    return tensors, meta


def save_weights(model: nn.Module, path: str | Path, meta: dict | None = None) -> None:
    atomic_save(dict(model.state_dict()), path, meta)


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
    ids = [i for g in groups for i in g["params"]]
    if state and (set(state) != set(ids) or len({frozenset(st) for st in state.values()}) != 1):
        raise ValueError("the optimizer state is incomplete")  # torch would only fail at the next step
    opt.load_state_dict({"state": state, "param_groups": groups})
    for p, st in opt.state.items():
        for k, v in st.items():
            if not torch.is_tensor(v) or v.dim() == 0:
                continue
            if v.shape != p.shape:
                raise ValueError(f"optimizer state {k} has shape {tuple(v.shape)}, its parameter {tuple(p.shape)}")
            if v.stride() != p.stride():  # saved contiguous; fused AdamW on CUDA wants channels_last moments
                st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def rng_state(loader_generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    if loader_generator is not None:
        tensors["rng/loader"] = loader_generator.get_state()
    py = random.getstate()
    np_state = cast(tuple, np.random.get_state())  # (legacy=True, the default: a tuple; the stubs say dict too)
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
    epoch: int,
    history: list[dict],
    recipe: dict,
    step: int | None = None,
    loader_generator: torch.Generator | None = None,
    scheduler=None,
) -> None:
    """Everything needed to continue after `epoch` (`step` steps), in one atomically written safetensors file.

    A run needs no `scheduler`: its learning rate is a function of the step (`recipes.lr_at`). A torch LR
    scheduler of a loop written by hand is stored too, as JSON metadata."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt_t, opt_meta = _optimizer_to_flat(optimizer)
    rng_t, rng_meta = rng_state(loader_generator)
    tensors.update(opt_t)
    tensors.update(rng_t)
    meta = {"format": 1, "epoch": epoch, "step": step, "history": history, "recipe": recipe, "optimizer": opt_meta}
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    meta["rng"] = rng_meta
    atomic_save(tensors, path, meta)


_RECORD_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_time_s", "imgs_per_s")


def _history_ok(history, epoch) -> bool:
    """A list of records with every metric a finite number, ending at `epoch`."""
    if not isinstance(history, list) or not history:
        return False
    for r in history:
        if not isinstance(r, dict):
            return False
        for k in _RECORD_KEYS:
            v = r.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                return False
    return history[-1]["epoch"] == epoch


def _whole_or_none(step, epoch) -> bool:
    """A checkpoint's step: absent (written before steps were counted) or a whole number >= its epoch."""
    if step is None:
        return True
    return isinstance(step, int) and not isinstance(step, bool) and isinstance(epoch, int) and step >= epoch


def model_part(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict inside a training checkpoint's tensors (empty for a plain weights file)."""
    return {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}


def read_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a training checkpoint, its structure checked: a damaged one is a one-line UserError."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != 1:
        raise UserError(f"{path} is not an mnistlab training checkpoint")
    epoch, history = meta.get("epoch"), meta.get("history")
    problems = [
        (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 1, "epoch is not a whole number >= 1"),
        (_whole_or_none(meta.get("step"), epoch), "its step is not a whole number of at least its epoch"),
        (_history_ok(history, epoch), f"its history does not hold one record per evaluation up to epoch {epoch}"),
        (isinstance(meta.get("recipe"), dict), "it holds no recipe"),
        (isinstance(meta.get("optimizer"), dict), "it holds no optimizer state"),
        (meta.get("scheduler") is None or isinstance(meta["scheduler"], dict), "the scheduler state is damaged"),
        (isinstance(meta.get("rng"), dict) and "rng/torch" in tensors, "it holds no random-number state"),
        (model_part(tensors), "it holds no model weights"),
    ]
    for ok, what in problems:
        if not ok:
            raise UserError(f"{path} is damaged: {what}; start a new run, or restore the file from a backup")
    return tensors, meta


def checkpoint_epoch(path) -> int:
    """The epoch a training checkpoint ends, read from its header alone (no tensor is loaded); 0 where there is no
    checkpoint, or none that can be read: nothing to resume from."""
    try:
        with safe_open(str(path), framework="pt") as f:
            epoch = json.loads((f.metadata() or {}).get(_META_KEY, "{}")).get("epoch")
    except (SafetensorError, OSError, ValueError, AttributeError):  # (AttributeError: JSON that is not an object)
        return 0
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else 0


def restore_checkpoint(
    path, tensors, meta, *, model, optimizer, scheduler=None, loader_generator: torch.Generator | None = None
) -> None:
    """Restore model, optimizer, RNG (and a hand-written loop's scheduler) states from `read_checkpoint`'s result.

    Anything that does not fit (a missing or wrongly shaped tensor, a damaged state) is a one-line UserError.
    """
    try:
        model.load_state_dict(model_part(tensors))
        _optimizer_from_flat(optimizer, tensors, meta["optimizer"])
        if scheduler is not None and meta.get("scheduler") is not None:
            scheduler.load_state_dict(meta["scheduler"])
        restore_rng(tensors, meta["rng"], loader_generator)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, OverflowError) as e:
        why = one_line(e)[:200]
        raise UserError(f"{path} does not fit this run ({why}); start a new run, or restore it from a backup") from None


def load_checkpoint(path, *, model, optimizer, scheduler=None, loader_generator: torch.Generator | None = None) -> dict:
    """Read, check and restore a checkpoint in place; return its metadata (epoch, history, recipe, ...)."""
    tensors, meta = read_checkpoint(path)
    restore_checkpoint(
        path, tensors, meta, model=model, optimizer=optimizer, scheduler=scheduler, loader_generator=loader_generator
    )
    return meta

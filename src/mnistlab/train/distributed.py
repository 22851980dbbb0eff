"""Several training processes under torchrun: rank and world size, the process group, its collectives."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mnistlab.errors import UserError

TIMEOUT_ENV = "MNISTLAB_DIST_TIMEOUT"  # seconds a collective may wait for a peer before the run fails
DEFAULT_TIMEOUT_S = 45
FORCE_ENV = "MNISTLAB_DDP"  # "1": DistributedDataParallel even for one process under torchrun (to measure its cost)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: (rank, world_size, local_rank); (0, 1, 0) alone."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    force: bool = False  # DDP for a single process too ($MNISTLAB_DDP=1 under torchrun)

    @property
    def is_main(self) -> bool:
        """Whether this process is the one that writes the run folder and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether this process joins a process group and trains in DistributedDataParallel."""
        return self.world_size > 1 or self.force


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def world() -> World:
    """This process's RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them; a lone process is (0, 1, 0)."""
    try:
        rank, size, local = (int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise UserError(f"rank {rank} does not fit a world of size {size} (RANK and WORLD_SIZE as torchrun sets them)")
    return World(rank, size, local, force=launched() and os.environ.get(FORCE_ENV) == "1")


def share(batch_size: int, world_size: int) -> int:
    """Each process's part of a global batch; a one-line UserError when the processes cannot split it evenly."""
    if batch_size % world_size:
        raise UserError(
            f"the batch size {batch_size} is the global batch, shared by the {world_size} training processes: it "
            "must be divisible by their number"
        )
    return batch_size // world_size


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (0 on the first start)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def timeout() -> datetime.timedelta:
    """How long a collective waits for a lost peer: $MNISTLAB_DIST_TIMEOUT seconds, else 45."""
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86_400:
        raise UserError(f"{TIMEOUT_ENV} must be a number of seconds in (0, 86400), not {text!r}")
    return datetime.timedelta(seconds=seconds)


def device_for(device: torch.device, w: World) -> torch.device:
    """The device of this rank: with several processes on CUDA, GPU number LOCAL_RANK."""
    if w.distributed and device.type == "cuda":
        if w.local_rank >= torch.cuda.device_count():
            raise UserError(
                f"local rank {w.local_rank} has no GPU: this node has {torch.cuda.device_count()}; start at most "
                "that many processes per node"
            )
        return torch.device("cuda", w.local_rank)
    return device


def setup(device: torch.device) -> World:
    """Join the process group (once) when there are several processes: nccl on CUDA, gloo otherwise."""
    w = world()
    if w.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        device_id = device if device.type == "cuda" else None  # (binds the NCCL communicator to this GPU)
        dist.init_process_group(
            backend, timeout=timeout(), store=_store(w), rank=w.rank, world_size=w.world_size, device_id=device_id
        )
    return w


def _store(w: World):
    """The rendezvous store at MASTER_ADDR:MASTER_PORT, its keys prefixed with torchrun's restart count.

    torchrun's agent keeps one store for all restarts of a worker group, and the process group's keys do not say
    which start wrote them: without the prefix a restarted group reads its dead predecessors' addresses and fails
    to connect."""
    try:
        host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    except (KeyError, ValueError):
        raise UserError("MASTER_ADDR and MASTER_PORT must name the rendezvous (torchrun sets them)") from None
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)  # then torchrun's agent serves the store
    store = dist.TCPStore(
        host, port, w.world_size, is_master=not agent and w.rank == 0, timeout=timeout(), multi_tenant=True
    )
    return dist.PrefixStore(f"mnistlab/start-{restart_count()}", store)


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """`t` summed over every process (in place; unchanged when alone)."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    """Wait until every process gets here (nothing when alone)."""
    if active():
        dist.barrier()


def destroy() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel when several processes train (gradients averaged by DDP), else itself."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)

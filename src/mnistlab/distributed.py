"""Several training processes under torchrun: rank and world size, the process group, its collectives, the launcher."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mnistlab.errors import UserError

TIMEOUT_ENV = "MNISTLAB_DIST_TIMEOUT"  # seconds a collective may wait for a peer before the run fails
DEFAULT_TIMEOUT_S = 45
ERROR_DIR_ENV = "MNISTLAB_ERROR_DIR"  # set by `mnistlab train --nproc` for its workers: where their error lines go
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
        kw = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=timeout(), store=_store(w), rank=w.rank, world_size=w.world_size, **kw)
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


# --------------------------------------------------------------------------------------------------------------
# `mnistlab train --nproc N`: torchrun's launcher, in this process


def quiet_launcher(debug: bool = False) -> None:
    """Keep the launcher's own log lines and c10d's C++ warnings off stderr (unless `debug`): a launch reports in
    one line whether it worked. Call before anything distributed is imported or started."""
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # read by the workers, which start afresh
    if not debug:
        os.environ.setdefault("LOGLEVEL", "CRITICAL")  # torch.distributed.elastic's loggers read it when created
        _silence()


def _silence() -> None:
    import logging

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def error_file(rank: int) -> str | None:
    """Where a worker of `mnistlab train --nproc` writes its error line (None for any other process)."""
    folder = os.environ.get(ERROR_DIR_ENV)
    return os.path.join(folder, f"rank-{rank}-restart-{restart_count()}.txt") if folder else None


def launch(argv: list[str], *, nproc: int, max_restarts: int = 0) -> int:
    """Run `python -m mnistlab ARGV` in `nproc` processes as `torchrun --standalone --nproc-per-node nproc` would,
    restarting all of them up to `max_restarts` times when one fails. Returns the exit status: 0; 2 when a
    process stopped on a user's mistake (its one line is printed); 1 for any other failure (one line too)."""
    import sys
    import tempfile
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if os.environ.get("LOGLEVEL") == "CRITICAL":
        _silence()  # loggers created before quiet_launcher
    if nproc > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # standalone: a store on a free port of this machine
        max_restarts=max_restarts,
    )
    with tempfile.TemporaryDirectory(prefix="mnistlab-workers-") as errors:
        os.environ[ERROR_DIR_ENV] = errors
        try:
            elastic_launch(config, sys.executable)("-u", "-m", "mnistlab", *argv)
            return 0
        except ChildFailedError as e:
            status, line = _failure_line(e, errors, max_restarts)
        except Exception as e:  # the launcher itself failed (rendezvous, ports, ...)
            if type(e).__name__ == "SignalException":  # Ctrl-C or SIGTERM: the launcher has stopped the processes,
                return 128 + int(getattr(e, "sigval", 2))  # and rank 0 has said what is kept (one line)
            from mnistlab.errors import one_line

            status, line = 1, f"mnistlab: error: could not start the training processes: {one_line(e)[:300]}"
        finally:
            os.environ.pop(ERROR_DIR_ENV, None)
    print(line, file=sys.stderr)
    return status


def _failure_line(e, errors: str, max_restarts: int) -> tuple[int, str]:
    """(exit status, one line) for a worker group that failed for good: a user error's own line and status 2, else
    the first failure's line, or what ended it (a signal, a status), and status 1."""
    from pathlib import Path

    written: dict[int, tuple[int, str]] = {}  # rank: (restart, line), the last attempt's
    for f in Path(errors).glob("rank-*-restart-*.txt"):
        _, rank, _, restart = f.stem.split("-")
        line = (f.read_text().strip().splitlines() or [""])[0]
        if line and (int(rank) not in written or int(restart) > written[int(rank)][0]):
            written[int(rank)] = (int(restart), line)
    failures = e.failures
    user = sorted(r for r, f in failures.items() if f.exitcode == 2)
    if user:
        rank = user[0]
        return 2, written.get(rank, (0, f"mnistlab: error: process {rank} stopped on an error"))[1]
    rank, first = e.get_first_failure()
    after = f" (after {max_restarts} restart{'s' * (max_restarts != 1)})" if max_restarts else ""
    if rank in written:
        return 1, written[rank][1] + after
    how = f"was killed by {first.signal_name()}" if first.exitcode < 0 else f"exited with status {first.exitcode}"
    return 1, f"mnistlab: error: training process {rank} {how}{after}"

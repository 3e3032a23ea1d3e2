"""Process-group setup, rank helpers, per-rank memory accounting and sharded checkpoints for the
training strategies (strategy.py).

Everything here is a thin layer over torch.distributed: ``init_process_group`` (launched by
``torchrun``, or a one-rank group when run without it), ``torch.distributed.checkpoint`` (DCP)
for sharded, resharding-on-load checkpoints, and DTensor's ``distribute_tensor`` to cut a full
tensor into the local shard. No collective is written by hand.

Memory accounting follows ZeRO (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward
Training Trillion Parameter Models", §3-5): parameters, gradients and optimizer states are
counted separately, per rank, as the bytes each rank actually holds.
"""
from __future__ import annotations

import datetime
import os
import socket
from typing import Any, Iterable

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set RANK/WORLD_SIZE for this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_process_group() -> tuple[int, int, torch.device]:
    """Join (or create) the default process group: NCCL on CUDA, gloo on CPU; returns (rank, world, device).

    Without torchrun a one-rank group is created on localhost, so ``--strategy fsdp`` also runs
    (as world size 1) in a plain ``python`` process.
    """
    if not dist.is_initialized():
        if not launched_by_torchrun():
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", str(_free_port()))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        # a rank that hangs (not dies) is noticed after this many seconds instead of torch's 30 minutes
        timeout = datetime.timedelta(seconds=float(os.environ.get("FRONTIERKIT_DIST_TIMEOUT", "600")))
        dist.init_process_group(backend=backend, timeout=timeout)
    device = (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available()
              else torch.device("cpu"))
    return dist.get_rank(), dist.get_world_size(), device


def mean_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """All-reduce average of a few scalars (equal shards: mean of per-rank means = global mean)."""
    if not values:
        return []
    t = torch.tensor(values, dtype=torch.float64 if device.type == "cpu" else torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / dist.get_world_size()).tolist()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# ---- per-rank memory --------------------------------------------------------------------

def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The shard this rank stores: ``DTensor.to_local()`` for FSDP2 tensors, else ``t``."""
    from torch.distributed.tensor import DTensor
    return t.to_local() if isinstance(t, DTensor) else t


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes this rank stores for ``tensors`` (local shards only)."""
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor):
            lt = local_tensor(t)
            total += lt.numel() * lt.element_size()
    return total


def optimizer_state_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """All tensors of ``opt.state`` (Adam's exp_avg, exp_avg_sq, step)."""
    return [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]


# ---- full <-> sharded tensors ------------------------------------------------------------

def copy_full_into(target: torch.Tensor, full: torch.Tensor) -> None:
    """Write a full tensor into ``target``, keeping only this rank's shard when ``target`` is a DTensor."""
    from torch.distributed.tensor import DTensor, distribute_tensor
    with torch.no_grad():
        if isinstance(target, DTensor):
            shard = distribute_tensor(full.to(target.device, target.dtype), target.device_mesh, target.placements)
            target.to_local().copy_(shard.to_local())
        else:
            target.copy_(full.to(target.device, target.dtype))


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on every rank (all-gather for a DTensor)."""
    from torch.distributed.tensor import DTensor
    return t.full_tensor() if isinstance(t, DTensor) else t


def torchrun(args: list[str], nproc: int = 2, timeout: float = 300, env: dict[str, str] | None = None,
             cwd: str | os.PathLike | None = None) -> tuple[int, str, str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N ARGS`` in its own session;
    returns (returncode, stdout, stderr). On timeout the launcher and every rank are killed (no orphans)
    and TimeoutError is raised."""
    import signal
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"torchrun {' '.join(args[:3])} did not finish within {timeout:.0f} s") from None
    return proc.returncode, out, err

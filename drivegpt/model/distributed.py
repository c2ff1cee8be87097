"""Data-parallel training under ``torchrun`` (DDP): gloo on CPU, nccl on GPU.

Run any training as ``torchrun --nproc-per-node N -m drivegpt.cli.app pretrain ...``: torchrun sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without them everything runs in one process as before.
Every rank draws the same *global* batch from the same seeded generator and keeps its slice, so a
run with N processes sees the same data in the same order as one process with the same global batch.
"""

from __future__ import annotations

import gc
import os
from typing import Any, NamedTuple, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from drivegpt.core.errors import UserError

T = TypeVar("T", bound=tuple)


class DistContext(NamedTuple):
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0: the only process that writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup() -> DistContext:
    """Join the process group that torchrun describes (or run alone when there is none)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if world == 1:
        return DistContext(0, 1, 0, torch.device("cuda" if cuda else "cpu"))
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device)


def teardown(ctx: DistContext, wait: bool = True) -> None:
    """Leave the process group: together after a run that succeeded (``wait``: a barrier, so nobody
    leaves while rank 0 is still writing), at once from a rank that failed (the others may never reach
    a barrier; torchrun stops them). Objects that still hold the group (a DDP reducer kept alive by a
    reference cycle, finished gloo work) are collected first, while the interpreter is whole: freed at
    its exit instead, gloo's threads can abort the process."""
    if ctx.distributed and dist.is_initialized():
        gc.collect()
        if wait:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``model`` in DDP when distributed (gradients averaged over ranks in ``backward``)."""
    if not ctx.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)


def shard(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous slice (dim 0) of a global batch tensor, on its device."""
    n = len(t)
    if n % ctx.world_size:
        raise UserError(
            f"batch_size {n} is not divisible by {ctx.world_size} processes; "
            "choose a global batch_size that is a multiple of --nproc-per-node"
        )
    b = n // ctx.world_size
    return t[ctx.rank * b : (ctx.rank + 1) * b].to(ctx.device)


def shard_batch(batch: T, ctx: DistContext) -> T:
    """:func:`shard` of every tensor of a NamedTuple batch."""
    return type(batch)(*(shard(t, ctx) for t in batch))


def all_sum(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``x`` over ranks (``x`` itself in one process)."""
    if not ctx.distributed:
        return x
    x = x.detach().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (plain JSON-like data between our own processes)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]

"""Processes under ``torchrun``: rank, world size, process group (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op when alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def mean_over_ranks(value: float, info: DistInfo, device: torch.device) -> float:
    if info.world <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world


def min_over_ranks(value: float, info: DistInfo, device: torch.device) -> float:
    """The smallest ``value`` of all processes (so that every rank takes the same decision)."""
    if info.world <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return float(t.item())


def any_over_ranks(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when it is true on any (a time budget that ran out on one)."""
    if info.world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def shutdown(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()

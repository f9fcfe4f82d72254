"""Process group and device for the trainer: a single process, or DDP under ``torchrun``."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "setup_distributed", "all_reduce_sum", "broadcast_flag"]


@dataclass
class DistContext:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool  # we created the process group, so we destroy it at the end

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)


def setup_distributed(device: str = "auto") -> DistContext:
    """Use an existing process group, start one when ``torchrun`` set WORLD_SIZE > 1, or run alone.

    Backend: NCCL when the device is CUDA, gloo on the CPU.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        dev = _pick_device(device, local_rank)
        return DistContext(dist.get_rank(), dist.get_world_size(), dev, owns_group=False)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = _pick_device(device, local_rank)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        return DistContext(dist.get_rank(), dist.get_world_size(), dev, owns_group=True)
    return DistContext(0, 1, _pick_device(device, local_rank), owns_group=False)


def all_reduce_sum(ctx: DistContext, values: list[float]) -> list[float]:
    """Sum a few scalars over all processes (identity for a single process)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(ctx: DistContext, flag: bool) -> bool:
    """Rank 0's decision (e.g. "time is up") for every process, so all stop at the same step."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())

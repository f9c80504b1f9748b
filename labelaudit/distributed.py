"""Device, DDP and rank handling, decided once per process (torchrun sets RANK/WORLD_SIZE)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """Where this process runs and whether it is the one that writes files."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # setup_distributed made the process group (so `release` ends it)

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def local_device() -> torch.device:
    """This process's device: the GPU of its LOCAL_RANK (0 alone) when there are GPUs, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def setup_distributed() -> Dist:
    """Join the process group when launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = local_device()
    if world > 1:
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            torch.cuda.set_device(local)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return Dist(rank, world, local, device, owns)
    return Dist(0, 1, 0, device)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast_module(module: torch.nn.Module, d: Dist) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not d.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def broadcast_object(obj, d: Dist):
    """Rank 0's `obj` (any picklable value) on every rank."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(value: float, d: Dist) -> float:
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return float(t.item()) / d.world_size


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def release(d: Dist) -> None:
    """End the process group if `setup_distributed` made it (a caller's own group stays).
    A group left to the interpreter's exit can abort the process there (SIGABRT: gloo's
    threads still hold tensors when Python finalises; seen once in a torchrun scan, stop 24)."""
    if d.owns_group:
        cleanup(d)

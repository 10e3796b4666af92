"""Process-group set-up, detected from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK).

One code path serves one CPU process, one GPU and several GPUs: without RANK in the environment
this is a world of size 1 and every collective below is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ffnlib.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_world(device_hint: str = "auto") -> World:
    """Join the process group torchrun describes (nccl on CUDA, gloo otherwise), or a world of one."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return World()
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_hint != "cpu"
        if use_cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return world


def resolve_device(name: str, world: World = World()) -> torch.device:
    """`auto` picks CUDA (this rank's GPU), then MPS, then CPU; "cuda" means this rank's GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", world.local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", world.local_rank)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available on this machine: use device=auto or cpu")
    return device


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum `tensor` over ranks in place (gloo needs CPU tensors, nccl CUDA ones) and return it."""
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (used to stop all ranks at the same step)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def shutdown(wait_for_peers: bool = True) -> None:
    """Leave the process group, if one was joined, by default once every rank has reached this point.

    Without the barrier a rank that finishes first tears its gloo connections down while a peer is
    still using them, and the peer can abort ("terminate called without an active exception"). Pass
    `wait_for_peers=False` on an error path, where a peer may never arrive.
    """
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()

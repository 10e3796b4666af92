"""Process-group set-up, detected from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK).

One code path serves one CPU process, one GPU, several GPUs and several nodes: without RANK in the
environment this is a world of size 1 and every collective below is a no-op. Several nodes are
torchrun's elastic launch, every node running the same command:

    torchrun --nnodes N --nproc-per-node G --rdzv-backend c10d --rdzv-endpoint HOST:PORT \
        --rdzv-id JOB -m ffnlib.train --config ...

(`slurm/train.sbatch` does it with `--nodes=N`.) What the number of ranks changes in a run is
`world_config`'s: the global batch and the learning rate (`batch_per_rank`), and whether BatchNorm
statistics are shared (`sync_bn`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ffnlib.errors import ConfigError

from .config import TrainConfig


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


def world_config(config: TrainConfig, world: World, device: torch.device) -> TrainConfig:
    """`config` as `world` trains it.

    The rule: by default (`batch_per_rank` = 0) `batch_size` is the global batch whatever the number
    of ranks (the official 32: 2 GPUs x 16, or 4 nodes x 8 GPUs x 1) and `lr` stays as given. With
    `batch_per_rank` = N every rank takes N videos, the global batch becomes N x ranks and `lr` grows
    linearly with it, `lr x global / batch_size` (so `batch_size` and `lr` state the reference pair,
    32 and 0.01): the returned config holds the global batch and lr in effect, which is what its
    model folder records and what a resumption must match. `warmup_steps` is taken as given.
    Raises ConfigError when the global batch does not split evenly, or `sync_bn` asks for
    SyncBatchNorm across processes that are not on CUDA (torch's SyncBatchNorm needs GPU tensors).
    """
    if config.batch_per_rank:
        batch = config.batch_per_rank * world.world_size
        if batch != config.batch_size:
            config = config.replace(batch_size=batch, lr=config.lr * batch / config.batch_size)
    if config.batch_size % world.world_size:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {world.world_size} ranks: "
                          f"use a multiple of {world.world_size}, or set batch_per_rank")
    if config.sync_bn and world.distributed and device.type != "cuda":
        raise ConfigError(f"sync_bn=True on {world.world_size} {device.type} processes: torch's SyncBatchNorm "
                          f"runs on CUDA only; leave sync_bn off (per-process statistics, the official recipe)")
    return config


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

"""Run under `torchrun --nproc_per_node=2`: two optimiser steps of `train_step` under DDP (gloo).

Each rank takes its share of one fixed global batch, exactly as `epoch_batches` splits it. BatchNorm
layers are frozen to their running statistics so that the loss does not depend on how the batch is
split (with per-GPU statistics, the official recipe, it would): what remains to compare with one
process on the whole batch is the loss averaging and the gradient all-reduce. Rank 0 writes JSON.
Each rank prints where it is, so that the output of a rank that dies shows how far it got.
"""
import json
import sys

import torch

from ffnlib.train import TrainConfig
from ffnlib.train import distributed as dist_utils
from ffnlib.train.loop import build_model, train_step
from ffnlib.train.optim import make_optimizer


def batch_for(rank: int, world_size: int, step: int):
    generator = torch.Generator().manual_seed(step)
    clips = torch.randn(4, 3, 4, 16, 16, generator=generator)  # (global B, C, T, H, W)
    labels = torch.tensor([0, 1, 2, 1])
    return clips[rank::world_size], labels[rank::world_size]


def say(world: dist_utils.World, what: str) -> None:
    if world.distributed:
        print(f"rank {world.rank}: {what}", flush=True)


def run(world: dist_utils.World) -> dict:
    torch.manual_seed(0)
    config = TrainConfig(recipe="vanilla", arch="small", num_frames=4, dropout=0.0, lr=0.1, batch_size=4)
    model = build_model(config, num_classes=3)
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step_model = model
    if world.distributed:
        step_model = torch.nn.parallel.DistributedDataParallel(model)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    losses = []
    for step in range(2):
        loss, *_ = train_step(step_model, optimizer, scaler, batch_for(world.rank, world.world_size, step),
                              config, torch.device("cpu"), None, world)
        total = dist_utils.all_reduce_sum(loss.detach().clone(), world) / world.world_size
        losses.append(total.item())
        say(world, f"step {step} done")
    return {"losses": losses, "fc_weight_sum": model.fc.weight.sum().item()}


if __name__ == "__main__":
    world = dist_utils.init_world("cpu")
    result = run(world)
    if world.is_main:
        with open(sys.argv[1], "w") as f:
            json.dump(result, f)
    say(world, "leaving the process group")
    dist_utils.shutdown()
    say(world, "left the process group")

"""Run under `torchrun --nproc_per_node=2`: two optimiser steps of `train_step` under DDP (gloo), for
each recipe with its own step (vanilla: one clip; ffn with or without distillation: clip by clip,
gradients reduced during the last clip's backward; mixed: each rank mixes its videos of the global batch).

Each rank takes its share of fixed global batches, exactly as `epoch_batches` splits them. BatchNorm
layers are frozen to their running statistics so that the loss does not depend on how the batch is
split (with per-GPU statistics, the official recipe, it would): what remains to compare with one
process on the whole batch is the loss averaging and the gradient all-reduce, which must reach every
parameter, an FFN's private BNs and adaconvs of the branches its last clip does not use included.
Rank 0 saves the losses and the weights after the two steps (`torch.save`, argv[1]).
Each rank prints where it is, so that the output of a rank that dies shows how far it got.
"""
import sys

import torch

from ffnlib.train import TrainConfig
from ffnlib.train import distributed as dist_utils
from ffnlib.train import build_model, train_step
from ffnlib.train.step import step_module
from ffnlib.train.optim import make_optimizer

RECIPES = {"vanilla": dict(num_frames=4), "ffn": dict(frame_counts=[2, 4]),
           "ffn_no_td": dict(recipe="ffn", frame_counts=[2, 4], distill=False),  # clip by clip, no distillation
           "mixed": dict(frame_counts=[2, 4], mixup_prob=1.0)}  # each rank mixes its share of the global batch


def batch_for(config: TrainConfig, rank: int, world_size: int, step: int):
    """This rank's share of the step's global batch of 4: one clip per trained frame count, then labels."""
    generator = torch.Generator().manual_seed(step)
    counts = config.frame_counts if config.recipe in ("ffn", "mixed") else [config.num_frames]
    clips = [torch.randn(4, 3, t, 16, 16, generator=generator) for t in counts]  # (global B, C, T, H, W)
    labels = torch.tensor([0, 1, 2, 1])
    return (*[c[rank::world_size] for c in clips], labels[rank::world_size])


def say(world: dist_utils.World, what: str) -> None:
    if world.distributed:
        print(f"rank {world.rank}: {what}", flush=True)


def run(world: dist_utils.World, recipe: str) -> dict:
    torch.manual_seed(0)
    config = TrainConfig.from_dict({"recipe": recipe, "arch": "small", "dropout": 0.0, "lr": 0.1, "batch_size": 4,
                                    **RECIPES[recipe]})
    model = build_model(config, num_classes=3)
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    cpu = torch.device("cpu")
    step_model = step_module(model, config, world, cpu)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    losses = []
    for step in range(2):
        loss, *_ = train_step(step_model, optimizer, scaler, batch_for(config, world.rank, world.world_size, step),
                              config, cpu, None, world, step=step)
        total = dist_utils.all_reduce_sum(loss.detach().clone(), world) / world.world_size
        losses.append(total.item())
        say(world, f"{recipe} step {step} done")
    return {"losses": losses, "weights": {k: v.detach().clone() for k, v in model.state_dict().items()}}


if __name__ == "__main__":
    world = dist_utils.init_world("cpu")
    results = {recipe: run(world, recipe) for recipe in RECIPES}
    if world.is_main:
        torch.save(results, sys.argv[1])
    say(world, "leaving the process group")
    dist_utils.shutdown()
    say(world, "left the process group")

"""The optimiser of the official recipe and the learning rate as a pure function of the step.

Parameter groups (official TSM/FFN code): conv and linear weights decay; BatchNorm weights and biases
and every other bias do not; the new fc layer learns faster (weight lr x fc_lr_mult, bias lr x
fc_bias_lr_mult, bias without decay).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """SGD parameter groups with `lr_mult` and `decay_mult` recorded in each group."""
    groups = {
        "decay": {"params": [], "lr_mult": 1.0, "decay_mult": 1.0},
        "no_decay": {"params": [], "lr_mult": 1.0, "decay_mult": 0.0},
        "fc_weight": {"params": [], "lr_mult": config.fc_lr_mult, "decay_mult": 1.0},
        "fc_bias": {"params": [], "lr_mult": config.fc_bias_lr_mult, "decay_mult": 0.0},
    }
    norm_params = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
                   for p in m.parameters(recurse=False)}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        owner = name.rpartition(".")[0]
        if owner == "fc" or owner.endswith(".fc"):  # the fc, or each network's (an FFN without weight sharing)
            key = "fc_bias" if name.endswith("bias") else "fc_weight"
        elif id(param) in norm_params or name.endswith("bias"):
            key = "no_decay"
        else:
            key = "decay"
        groups[key]["params"].append(param)
    out = []
    for name, group in groups.items():
        if group["params"]:
            out.append({**group, "name": name, "lr": config.lr * group["lr_mult"],
                        "weight_decay": config.weight_decay * group["decay_mult"]})
    return out


def make_optimizer(model: nn.Module, config: TrainConfig, fused: bool = False) -> torch.optim.SGD:
    """SGD over `param_groups`; `fused=True` asks for torch's fused implementation (CUDA)."""
    return torch.optim.SGD(param_groups(model, config), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, **({"fused": True} if fused else {}))


def lr_at(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Base learning rate at optimiser step `step` (0-based), before the group multipliers."""
    total = config.epochs * steps_per_epoch
    if config.lr_schedule == "step":
        epoch = step // steps_per_epoch
        factor = config.lr_gamma ** sum(epoch >= milestone for milestone in config.lr_steps)
    else:  # cosine over the whole run, after the warm-up
        done = max(step - config.warmup_steps, 0) / max(total - config.warmup_steps, 1)
        factor = 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
    if config.warmup_steps and step < config.warmup_steps:
        factor *= (step + 1) / config.warmup_steps
    return config.lr * factor


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]

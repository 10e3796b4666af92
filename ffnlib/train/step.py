"""One training step of every recipe: the loss, the backward, the optimiser step.

Recipes (TrainConfig.recipe):
    vanilla       one T (`num_frames`); separated training (ST) is vanilla at another T
    ffn           FFN on `frame_counts`: CE on the highest T + lam * KL(teacher || each lower T); with
                  `distill=False` (Table 4, w/o TD) the CE of every branch's output, summed, no KL
    proportional  one TSM; each iteration draws one T from `frame_counts` (probabilities `frame_probs`)
    mixed         the paper's Mixed Sampling: one TSM trained on the larger T of the pair `frame_counts`
                  only; with probability `mixup_prob` (rho) a step mixes each video's clip of the
                  smaller T into as many consecutive frames of its clip of the larger T (`mix_frames`,
                  a start and a weight ~ Beta(mixup_alpha, mixup_alpha) per video, `mixup_plan`);
                  labels unchanged (both clips are of the same video)
    finetune      vanilla at `num_frames`, starting from the weights of `init_from` (setup.init_finetune)
The ffn step goes clip by clip, the highest T first (`backward_per_clip`): the gradients of the
summed loss, one clip's activations alive at a time; under DDP the gradients are averaged over ranks
once, during the last clip's backward.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ffnlib.losses import distillation_kl, distillation_total, teacher_probs, temporal_distillation

from . import distributed as dist_utils
from .config import TrainConfig
from .data import model_input


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; nothing was saved after the last good checkpoint."""


MIXUP_STREAM = 2  # mixup_plan's generator: [seed, step, 2] (epoch_batches draws from [seed, epoch(, 1)])


# ------------------------------------------------------------------------------------------ mixed sampling
@dataclass(frozen=True)
class MixPlan:
    """How one step of the mixed recipe mixes, per video of this rank's batch: `start` (B,) int64, the
    first of the consecutive frames of the larger-T clip that take the smaller-T clip, and `weight`
    (B,) float32, the smaller clip's share in them."""

    start: torch.Tensor
    weight: torch.Tensor


def mixup_plan(config: TrainConfig, step: int, batch_size: int,
               world: dist_utils.World = dist_utils.World()) -> MixPlan | None:
    """The mixing of optimiser step `step` (0-based) for this rank's `batch_size` videos, or None when
    the step does not mix (probability 1 - mixup_prob). A pure function of (seed, step): the same
    after a resume, and for the same global batch whatever the number of ranks (drawn for the global
    batch, each rank taking its videos as `epoch_batches` gives them out)."""
    rng = np.random.default_rng([config.seed, step, MIXUP_STREAM])
    if not rng.random() < config.mixup_prob:
        return None
    low, high = sorted(config.frame_counts)
    total = max(config.batch_size, batch_size * world.world_size)  # the global batch
    start = rng.integers(0, high - low + 1, size=total)[world.rank::world.world_size][:batch_size]
    weight = rng.beta(config.mixup_alpha, config.mixup_alpha, size=total)[world.rank::world.world_size][:batch_size]
    return MixPlan(torch.from_numpy(start), torch.from_numpy(weight.astype(np.float32)))


def mix_frames(low: torch.Tensor, high: torch.Tensor, plan: MixPlan) -> torch.Tensor:
    """`high` (B, C, T_high, H, W) with frames start .. start + T_low - 1 of video b replaced by
    weight * low[b] + (1 - weight) * those frames; `low` (B, C, T_low, H, W) is the same videos' clip of
    the smaller T. Returns a new tensor, `high` untouched."""
    b, c, t_low, h, w = low.shape
    if high.shape[:2] != (b, c) or high.shape[3:] != (h, w) or high.shape[2] < t_low:
        raise ValueError(f"mix_frames: clips {tuple(low.shape)} and {tuple(high.shape)} are not the smaller and "
                         f"larger T of the same videos")
    start, weight = plan.start.to(high.device), plan.weight.to(high.device, high.dtype)
    frames = start[:, None] + torch.arange(t_low, device=high.device)  # (B, T_low)
    index = frames[:, None, :, None, None].expand(b, c, t_low, h, w)  # (B, C, T_low, H, W)
    share = weight[:, None, None, None, None]  # (B, 1, 1, 1, 1)
    mixed = share * low + (1 - share) * high.gather(2, index)  # (B, C, T_low, H, W)
    return high.scatter(2, index, mixed)


def mixed_clip(clips: list[torch.Tensor], config: TrainConfig, step: int,
               world: dist_utils.World = dist_utils.World()) -> tuple[torch.Tensor, bool]:
    """The mixed recipe's input: the clip of the larger T of `clips` (one per `frame_counts`, in that
    order), mixed as `mixup_plan(step)` says; and whether it was."""
    by_count = dict(zip(config.frame_counts, clips))
    low, high = sorted(by_count)
    plan = mixup_plan(config, step, by_count[high].shape[0], world)
    if plan is None:
        return by_count[high], False
    return mix_frames(by_count[low], by_count[high], plan), True


# ------------------------------------------------------------------------------------------ one step
def batch_on(batch, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A loader batch (clip, ..., target) as its clips, the model's input (`model_input`: uint8
    (B, C, T, S, S) copied and normalised on `device`, float32 out), and its targets on `device`."""
    *clips, target = batch
    return [model_input(c, device) for c in clips], target.to(device, non_blocking=True)


def compute_loss(model: nn.Module, batch, config: TrainConfig, device: torch.device, step: int = 0,
                 world: dist_utils.World = dist_utils.World()):
    """Loss of one batch (one forward of all its clips), its parts (detached, for logging), the main
    logits and the targets. `step` (the optimiser step) and `world` decide the mixed recipe's mixing."""
    clips, target = batch_on(batch, device)
    if config.recipe != "ffn":
        parts = {}
        clip = clips[0]  # (B, C, T, H, W)
        if config.recipe == "mixed":
            clip, mixed = mixed_clip(clips, config, step, world)
            parts["mixup"] = torch.tensor(float(mixed))  # the share of steps that mixed, in the metrics
        logits = model(clip)  # (B, classes)
        loss = F.cross_entropy(logits, target)
        return loss, {"ce": loss.detach(), **parts}, logits, target
    outputs = model(clips)  # one (B, classes) per frame count, in config.frame_counts order
    by_count = dict(zip(config.frame_counts, outputs))
    high = max(config.frame_counts)
    if config.distill:
        students = [t for t in config.frame_counts if t != high]
        parts = temporal_distillation(by_count[high], [by_count[t] for t in students], target, lam=config.lam)
        terms = {high: parts.ce, **dict(zip(students, parts.kl))}
        return parts.total, logged_parts(terms, high, distill=True), by_count[high], target
    ces = {t: F.cross_entropy(by_count[t], target) for t in config.frame_counts}  # w/o TD
    return sum(ces.values()), logged_parts(ces, high, distill=False), by_count[high], target


def logged_parts(terms: dict[int, torch.Tensor], high: int, *, distill: bool) -> dict[str, torch.Tensor]:
    """The loss parts as the metrics name them, detached, from one term per T (in `terms`' order):
    with `distill`, `ce` (the teacher's, at T = `high`) then `kl_<T>` per student; else `ce_<T>` each."""
    if distill:
        return {"ce": terms[high].detach(), **{f"kl_{t}": v.detach() for t, v in terms.items() if t != high}}
    return {f"ce_{t}": v.detach() for t, v in terms.items()}


def backward_per_clip(model: nn.Module, clips: dict[int, torch.Tensor], target: torch.Tensor, *, distill: bool,
                      lam: float = 1.0, autocast=contextlib.nullcontext, scale=lambda loss: loss,
                      no_sync=contextlib.nullcontext):
    """Forward and backward the clips of one batch one at a time, the highest T first.

    `clips` maps each T to its clip (B, C, T, H, W); `model([clip])` gives `[logits]` (an FFN's
    multi-clip forward). With `distill` (the ffn recipe) the highest T is the teacher: its CE, then
    `lam` * KL(teacher || clip) for each lower T; without (w/o TD), each clip's CE. Each
    term depends on its own clip's forward only (the teacher's probabilities are detached), so the
    gradients add up to those of the joint loss, while the step holds one clip's activations at a
    time: FFN on 4+8+16 keeps 16 frames' worth instead of 28, and a CPU step gets faster for it.
    `autocast()` is entered around each forward; `scale` (GradScaler.scale) is applied to each term
    before its backward. `no_sync()` is entered around the forward and backward of every clip but the
    last: with DDP's `no_sync` the gradients add up locally and are averaged over ranks once, during
    the last clip's backward. Returns the loss (detached), its parts (`logged_parts`, as
    `compute_loss` gives them) and the highest T's logits.
    """
    high = max(clips)
    order = [high] + [t for t in clips if t != high]
    terms: dict[int, torch.Tensor] = dict.fromkeys(clips)  # filled in `order`, kept in `clips`' order
    probs = high_logits = None
    for t in order:
        student = distill and t != high
        with no_sync() if t != order[-1] else contextlib.nullcontext():
            with autocast():  # the softmax and the losses too, as autocast runs them in the joint step
                logits = model([clips[t]])[0]  # (B, classes)
                term = distillation_kl(logits, probs) if student else F.cross_entropy(logits, target)
                if t == high:
                    high_logits = logits.detach()
                    probs = teacher_probs(logits) if distill else None
            scale(lam * term if student else term).backward()
        terms[t] = term.detach()
    loss = distillation_total(terms[high], [terms[t] for t in order[1:]], lam) if distill else sum(terms.values())
    return loss, logged_parts(terms, high, distill=distill), high_logits


def step_module(model: nn.Module, config: TrainConfig, world: dist_utils.World, device: torch.device,
                compile_mode: str | None = None) -> nn.Module:
    """What `train_step` runs: `model`, in DDP when the world is distributed, compiled when
    `config.compile` (with `compile_mode`, torch's default when None). `model` keeps the weights
    (checkpoints save it)."""
    step_model: nn.Module = model
    if world.distributed:
        # An FFN step's last clip leaves the other branches' private BNs and adaconvs (without weight
        # sharing: whole networks) out of its graph: DDP must look for them, and then averages the
        # gradients they gathered under no_sync.
        step_model = nn.parallel.DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.recipe == "ffn")
    if config.compile:
        step_model = torch.compile(step_model, mode=compile_mode)
    return step_model


def train_step(step_model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               batch, config: TrainConfig, device: torch.device, amp: torch.dtype | None,
               world: dist_utils.World = dist_utils.World(), where: str = "", check_finite: bool = True,
               step: int = 0):
    """One optimiser step on `batch` (forward, loss, backward, clipping, step), as `fit` does it;
    `step` is the optimiser step's index (0-based, what `fit` counts), which the mixed recipe's
    mixing is drawn from.

    The ffn recipe goes one clip at a time (`backward_per_clip`); a DDP `step_model` reduces the
    gradients once, during the last clip's backward (its `no_sync` around the others).
    Raises NonFiniteLoss (on every rank) before touching the weights when the loss is NaN or inf.
    `check_finite=False` skips that check, the step's only wait for the device (for benchmarks).
    Returns the loss, its parts, the main logits and the targets.
    """
    def autocast():
        return torch.autocast(device.type, dtype=amp, enabled=amp is not None)

    def check(loss: torch.Tensor) -> None:
        if check_finite and dist_utils.any_rank(not torch.isfinite(loss).item(), world, device):
            raise NonFiniteLoss(f"non-finite loss ({loss.item()}) {where}")

    optimizer.zero_grad(set_to_none=True)
    if config.recipe == "ffn":
        clips, target = batch_on(batch, device)
        loss, parts, logits = backward_per_clip(step_model, dict(zip(config.frame_counts, clips)), target,
                                                distill=config.distill, lam=config.lam,
                                                autocast=autocast, scale=scaler.scale,
                                                no_sync=getattr(step_model, "no_sync", contextlib.nullcontext))
        check(loss)
    else:
        with autocast():
            loss, parts, logits, target = compute_loss(step_model, batch, config, device, step, world)
        check(loss)
        scaler.scale(loss).backward()
    if config.clip_grad_norm > 0:
        scaler.unscale_(optimizer)  # clip the true gradients, also under fp16 loss scaling
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], config.clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss, parts, logits, target


def add_step(sums: dict, loss: torch.Tensor, parts: dict, logits: torch.Tensor, target: torch.Tensor) -> int:
    """Add one step's loss, loss parts and correct predictions, each summed over the batch, to `sums`
    (missing keys start at 0); returns the batch size. One wait for the device for all of them."""
    n = target.shape[0]
    correct = (logits.argmax(dim=1) == target).sum()
    values = torch.stack([t.detach().to(loss.device, torch.float32) for t in (loss, *parts.values(), correct)])
    *losses, num_correct = values.tolist()
    for key, value in zip(["loss", *parts], losses):
        sums[key] = sums.get(key, 0.0) + value * n
    sums["correct"] = sums.get("correct", 0.0) + num_correct
    return n


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return None
    if config.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if config.amp == "bf16" else torch.float16


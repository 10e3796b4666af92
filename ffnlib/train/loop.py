"""`fit`: one training loop for every model of the study, that never loses work.

Recipes (TrainConfig.recipe):
    vanilla       one T (`num_frames`); separated training (ST) is vanilla at another T
    ffn           FFN on `frame_counts`: CE on the highest T + lam * KL(teacher || each lower T)
    proportional  one TSM; each iteration draws one T from `frame_counts` (probabilities `frame_probs`)
    mixed         one TSM (shared BN); each iteration sees every T of `frame_counts` for the same
                  videos, loss = sum of the CE at each T
The ffn and mixed steps go clip by clip, the highest T first (`backward_per_clip`): the gradients of
the summed loss, one clip's activations alive at a time; under DDP the gradients are averaged over
ranks once, during the last clip's backward.

Run folder: `config.yaml`, `metrics.jsonl` (one line per epoch), `checkpoints/last.pt` (every epoch
and every `save_every_steps`), `best.pt` (by validation top-1 at the highest evaluated T),
`final.pt`, optionally `epoch_N.pt`. A folder that holds `last.pt` resumes from it, to the same
metrics as an uninterrupted run (CPU, deterministic mode): data order and augmentation are pure
functions of (seed, epoch, index) and the RNG of dropout is restored.

SIGTERM or SIGUSR1: `last.pt` is written at the next step boundary and `Preempted` is raised; the
command line then exits with REQUEUE_EXIT_CODE (75), which the SLURM scripts requeue on.
A NaN or inf loss raises `NonFiniteLoss` naming the step; the last good checkpoint stays.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm.auto import tqdm

from ffnlib.datasets import DATA_KEYS, MultiFrameClips, SSv2, VideoClips, open_train_val
from ffnlib.losses import distillation_kl, distillation_total, teacher_probs, temporal_distillation
from ffnlib.models import create_model
from ffnlib.paths import leftover_temporaries, project_path, write_text_atomic

from . import distributed as dist_utils
from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from .config import TrainConfig
from .evaluate import EvaluationStopped, evaluate
from .optim import lr_at, make_optimizer, set_lr

log = logging.getLogger(__name__)

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "stopped on request, state saved, run me again"
CHECKPOINT_NAMES = ("best", "final", "last")  # and epoch_<N>
# Changing these between a checkpoint and its resumption would train something else: refused.
FIT_KEYS = ("recipe", "arch", "model_kwargs", "num_frames", "frame_counts", "frame_probs", "data_root",
            "builtin", "frame_size", "batch_size", "seed", "lam", "dataset", "frame_template", "train_split",
            "val_split", "fold", "skip_missing_videos")


class Preempted(RuntimeError):
    """Training stopped by SIGTERM/SIGUSR1 after saving `last.pt`; running again resumes."""

    exit_code = REQUEUE_EXIT_CODE


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; nothing was saved after the last good checkpoint."""


# ------------------------------------------------------------------------------------------ run folder
@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """`checkpoints/<name>.pt`, name being best, final, last or epoch_<N>."""
        if name not in CHECKPOINT_NAMES and not re.fullmatch(r"epoch_\d+", name):
            raise ValueError(f"checkpoint must be one of {CHECKPOINT_NAMES} or epoch_<N>, got {name!r}")
        return self.checkpoints / f"{name}.pt"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def final(self) -> Path:
        return self.checkpoint("final")

    def epoch(self, n: int) -> Path:
        return self.checkpoint(f"epoch_{n}")

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def pid(self) -> Path:
        """Holds the training process id while it runs, for SLURM scripts to signal it."""
        return self.root / "train.pid"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The lines of `metrics.jsonl` in `run_dir` (one dict per epoch)."""
    path = RunFolder(Path(run_dir)).metrics
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rewrite_metrics(run: RunFolder, keep_epochs: int) -> list[dict]:
    """Drop metric lines of epochs after the checkpoint being resumed (they will be redone)."""
    history = [m for m in read_metrics(run.root) if m["epoch"] <= keep_epochs]
    write_text_atomic(run.metrics, "".join(json.dumps(m) + "\n" for m in history))
    return history


# ------------------------------------------------------------------------------------------ data
def open_splits(config: TrainConfig, progress: bool = True) -> tuple[SSv2, SSv2]:
    """The train and validation splits of `config`'s data (layout `dataset` at `data_root`, or the built-in
    data, generated once, with a bar if `progress`); see `ffnlib.datasets.open_train_val`."""
    return open_train_val(**{key: getattr(config, key) for key in DATA_KEYS}, progress=progress)


def train_view(config: TrainConfig, source: SSv2):
    common = dict(train=True, frame_size=config.frame_size, resize_size=config.resize_size, seed=config.seed)
    if config.recipe == "vanilla":
        return VideoClips(source, num_frames=config.num_frames, **common)
    if config.recipe == "proportional":
        return VideoClips(source, num_frames=max(config.frame_counts), **common)
    return MultiFrameClips(source, frame_counts=config.frame_counts, **common)


def steps_in_epoch(config: TrainConfig, num_videos: int) -> int:
    """Optimiser steps per epoch: `steps_per_epoch`, or one pass over the split (last partial batch dropped)."""
    steps = config.steps_per_epoch or num_videos // config.batch_size
    if steps < 1:
        raise ValueError(f"the training split has {num_videos} videos, fewer than one batch of "
                         f"{config.batch_size}: lower batch_size or set steps_per_epoch")
    return steps


def epoch_batches(config: TrainConfig, num_videos: int, epoch: int, steps: int,
                  world: dist_utils.World) -> list[list]:
    """This rank's batches for `epoch`: a pure function of (seed, epoch), the same on every rank.

    Global batch b is the same videos whatever the number of ranks; each rank takes every
    world_size-th of them. Several permutations are chained when `steps` asks for more than one pass.
    For the proportional recipe each item is (index, T) with one T drawn per global batch.
    """
    rng = np.random.default_rng([config.seed, epoch])
    need = steps * config.batch_size
    order = np.concatenate([rng.permutation(num_videos) for _ in range(math.ceil(need / num_videos))])[:need]
    per_rank = config.batch_size // world.world_size
    mine = order.reshape(steps, config.batch_size)[:, world.rank::world.world_size][:, :per_rank]
    batches = [[int(i) for i in row] for row in mine]
    if config.recipe == "proportional":
        t_rng = np.random.default_rng([config.seed, epoch, 1])
        probs = np.asarray(config.frame_probs) if config.frame_probs else None
        counts = t_rng.choice(np.asarray(config.frame_counts), size=steps, p=probs)
        batches = [[(i, int(t)) for i in row] for row, t in zip(batches, counts)]
    return batches


# ------------------------------------------------------------------------------------------ model
class EachClip(nn.Module):
    """Runs one TSM on each clip of a list: the mixed recipe's model, given an FFN's multi-clip call."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, clips):
        return [self.model(clip) for clip in clips]


def model_kwargs(config: TrainConfig) -> dict:
    """The architecture keywords `create_model(config.model_name, ...)` gets from `config` (an FFN's
    frame counts included), dropout apart."""
    kwargs = dict(config.model_kwargs)
    if config.recipe == "ffn":
        kwargs.setdefault("frame_counts", tuple(config.frame_counts))
    return kwargs


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    kwargs = dict(dropout=config.dropout, **model_kwargs(config))
    pretrained = config.pretrained or None
    if pretrained and pretrained != "imagenet":
        pretrained = project_path(pretrained)
    model = create_model(config.model_name, num_classes, pretrained=pretrained, **kwargs)
    report = getattr(model, "load_report", None)
    if report is not None:
        log.info("%s", report)
    return model


def load_trained(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """The model trained in `run_dir` (checkpoint `which`: best, final or last) and its config, in eval mode."""
    path = RunFolder(Path(run_dir)).checkpoint(which)
    return trained_from_state(load_checkpoint(path), path, device)


def trained_from_state(state: dict, source: str | Path, device: str | torch.device = "cpu"):
    """The model and config of a checkpoint already read (`source` names it in errors), in eval mode."""
    config = TrainConfig.from_dict(state["config"], source=str(source))
    model = build_model(config.replace(pretrained=""), state["num_classes"])
    load_model_state(model, state["model"], str(source))
    return model.to(device).eval(), config


# ------------------------------------------------------------------------------------------ one step
def batch_on(batch, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A loader batch (clip, ..., target) as its clips and its targets on `device`."""
    *clips, target = batch
    return [c.to(device, non_blocking=True) for c in clips], target.to(device, non_blocking=True)


def compute_loss(model: nn.Module, batch, config: TrainConfig, device: torch.device):
    """Loss of one batch (one forward of all its clips), its parts (detached, for logging), the main
    logits and the targets."""
    clips, target = batch_on(batch, device)
    if config.recipe in ("vanilla", "proportional"):
        logits = model(clips[0])  # (B, classes)
        loss = F.cross_entropy(logits, target)
        return loss, {"ce": loss.detach()}, logits, target
    outputs = model(clips)  # one (B, classes) per frame count, in config.frame_counts order
    by_count = dict(zip(config.frame_counts, outputs))
    high = max(config.frame_counts)
    if config.recipe == "ffn":
        students = [t for t in config.frame_counts if t != high]
        parts = temporal_distillation(by_count[high], [by_count[t] for t in students], target, lam=config.lam)
        terms = {high: parts.ce, **dict(zip(students, parts.kl))}
        return parts.total, logged_parts(terms, high, distill=True), by_count[high], target
    ces = {t: F.cross_entropy(by_count[t], target) for t in config.frame_counts}  # mixed
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
    multi-clip forward, or `EachClip`). With `distill` (the ffn recipe) the highest T is the teacher:
    its CE, then `lam` * KL(teacher || clip) for each lower T; without (mixed), each clip's CE. Each
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


def step_module(model: nn.Module, config: TrainConfig, world: dist_utils.World, device: torch.device) -> nn.Module:
    """What `train_step` runs: `model` (in `EachClip` for the mixed recipe), in DDP when the world is
    distributed, compiled when `config.compile`. `model` keeps the weights (checkpoints save it)."""
    step_model: nn.Module = EachClip(model) if config.recipe == "mixed" else model
    if world.distributed:
        # An FFN step's last clip leaves the other branches' private BNs and adaconvs out of its graph:
        # DDP must look for them, and then averages the gradients they gathered under no_sync.
        step_model = nn.parallel.DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.recipe == "ffn")
    if config.compile:
        step_model = torch.compile(step_model)
    return step_model


def train_step(step_model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               batch, config: TrainConfig, device: torch.device, amp: torch.dtype | None,
               world: dist_utils.World = dist_utils.World(), where: str = "", check_finite: bool = True):
    """One optimiser step on `batch` (forward, loss, backward, clipping, step), as `fit` does it.

    The ffn and mixed recipes go one clip at a time (`backward_per_clip`); a DDP `step_model` reduces
    the gradients once, during the last clip's backward (its `no_sync` around the others).
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
    if config.recipe in ("ffn", "mixed"):
        clips, target = batch_on(batch, device)
        loss, parts, logits = backward_per_clip(step_model, dict(zip(config.frame_counts, clips)), target,
                                                distill=config.recipe == "ffn", lam=config.lam,
                                                autocast=autocast, scale=scaler.scale,
                                                no_sync=getattr(step_model, "no_sync", contextlib.nullcontext))
        check(loss)
    else:
        with autocast():
            loss, parts, logits, target = compute_loss(step_model, batch, config, device)
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
    (missing keys start at 0); returns the batch size. Each `.item()` waits for the device."""
    n = target.shape[0]
    sums["loss"] = sums.get("loss", 0.0) + loss.item() * n
    for key, value in parts.items():
        sums[key] = sums.get(key, 0.0) + value.item() * n
    sums["correct"] = sums.get("correct", 0.0) + (logits.argmax(dim=1) == target).sum().item()
    return n


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return None
    if config.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if config.amp == "bf16" else torch.float16


# ------------------------------------------------------------------------------------------ signals
class _StopRequest:
    """Set by SIGTERM/SIGUSR1; the loop checks it at step boundaries."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


# ------------------------------------------------------------------------------------------ fit
@dataclass
class FitResult:
    run_dir: Path
    config: TrainConfig
    model: nn.Module
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DDP
    return model


def _check_fits(saved: dict, config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    saved = {**TrainConfig().to_dict(), **saved}  # a key added since the checkpoint was saved had its default
    changed = {k: (saved.get(k), current[k]) for k in FIT_KEYS if saved.get(k) != current[k]}
    if changed:
        detail = "; ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in changed.items())
        raise CheckpointError(f"{path} was trained with another config ({detail}); "
                              f"use another run folder or the checkpoint's config")
    others = sorted(k for k in current if k not in FIT_KEYS and saved.get(k) != current[k])
    if others:
        log.warning("resuming %s with changed settings: %s", path, ", ".join(others))


def fit(config: TrainConfig, run_dir: str | Path, *, progress: bool = True) -> FitResult:
    """Train `config` in `run_dir` (resuming from its `last.pt` if there) and return the model."""
    run = RunFolder(Path(run_dir))
    world = dist_utils.init_world(config.device)
    device = dist_utils.resolve_device(config.device, world)
    if config.batch_size % world.world_size:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {world.world_size} ranks")
    if config.threads and device.type == "cpu":
        torch.set_num_threads(config.threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed * 1000 + world.rank)

    if world.is_main:
        train_src, val_src = open_splits(config, progress)  # the built-in data is generated here, once
    dist_utils.barrier(world)
    if not world.is_main:
        train_src, val_src = open_splits(config)
    num_classes = train_src.num_classes
    dataset = train_view(config, train_src)
    steps = steps_in_epoch(config, len(dataset))

    model = build_model(config, num_classes).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    amp = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)

    # -------------------------------------------------------------- resume
    epoch, step, skip = 0, 0, 0
    best: dict = {}
    partial: dict = {}
    history: list[dict] = []
    if run.last.exists():
        state = load_checkpoint(run.last)
        _check_fits(state["config"], config, run.last)
        load_model_state(model, state["model"], str(run.last))
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        epoch, step, skip = state["epoch"], state["step"], state["batch_in_epoch"]
        best, partial = dict(state["best"]), dict(state["partial"])
        if world.is_main:
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and state["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        else:
            torch.manual_seed(config.seed * 1000 + world.rank + 7919 * step)
        log.info("resuming %s at epoch %d, step %d", run.root, epoch + 1, step)
    if world.is_main:
        run.root.mkdir(parents=True, exist_ok=True)
        for stale in leftover_temporaries(run.checkpoints):  # left by a process killed while writing
            stale.unlink()
        history = _rewrite_metrics(run, epoch)
        write_text_atomic(run.config, config.to_yaml())

    step_model = step_module(model, config, world, device)

    high_eval = max(config.eval_frame_counts)
    per_rank_batch = config.batch_size // world.world_size
    frames_per_sample = sum(config.train_frame_counts) if config.recipe in ("ffn", "mixed") else None

    def state_dict(epochs_done: int, batch_in_epoch: int, sums: dict) -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "scheduler": {"name": config.lr_schedule, "step": step}, "epoch": epochs_done, "step": step,
            "batch_in_epoch": batch_in_epoch, "partial": sums, "best": best, "num_classes": num_classes,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "config": config.to_dict(),
        }

    def global_sums(sums: dict) -> dict:
        if not world.distributed:
            return dict(sums)
        keys = sorted(sums)
        t = dist_utils.all_reduce_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64,
                                                   device=device), world)
        return dict(zip(keys, t.tolist()))

    stop = _StopRequest()
    stop.install()  # before the pid file appears: a signal sent as soon as it exists is caught
    if world.is_main:
        run.pid.write_text(f"{os.getpid()}\n")
    try:
        while epoch < config.epochs:
            dataset.set_epoch(epoch)
            batches = epoch_batches(config, len(dataset), epoch, steps, world)[skip:]
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=batches, num_workers=config.num_workers,
                pin_memory=device.type == "cuda", generator=torch.Generator(),
                persistent_workers=False)
            # running sums over this epoch (this rank's; all ranks' once restored from a checkpoint)
            # this epoch's running sums; those restored from a mid-epoch checkpoint are all ranks'
            # together, so only rank 0 carries them
            sums = {"loss": 0.0, "correct": 0.0, "samples": 0.0, "frames": 0.0,
                    **(partial if world.is_main else {})}
            untimed = {"samples": partial.get("samples", 0.0), "frames": partial.get("frames", 0.0)}
            partial = {}
            started = time.perf_counter()
            bar = tqdm(total=steps, initial=skip, desc=f"epoch {epoch + 1}/{config.epochs}",
                       disable=not (progress and world.is_main), leave=False)
            model.train()
            batch_in_epoch = skip
            lr = lr_at(step, steps, config)
            for batch in loader:
                lr = lr_at(step, steps, config)
                set_lr(optimizer, lr)
                where = (f"in {run.root} at epoch {epoch + 1}, step {step + 1}; stopped without saving: "
                         f"the last good checkpoint is {run.last}")
                loss, parts, logits, target = train_step(step_model, optimizer, scaler, batch, config, device,
                                                         amp, world, where)
                step += 1
                batch_in_epoch += 1

                n = add_step(sums, loss, parts, logits, target)
                sums["samples"] += n
                sums["frames"] += n * (frames_per_sample or batch[0].shape[2])
                bar.update(1)
                bar.set_postfix({k: f"{sums[k] / sums['samples']:.3f}" for k in ("loss", *parts)}
                                | {"acc": f"{100 * sums['correct'] / sums['samples']:.1f}"}, refresh=False)

                stopping = dist_utils.any_rank(stop.signum is not None, world, device)
                periodic = config.save_every_steps and step % config.save_every_steps == 0
                if (stopping or periodic) and batch_in_epoch < steps:
                    snapshot = global_sums(sums)
                    if world.is_main:
                        save_checkpoint(run.last, state_dict(epoch, batch_in_epoch, snapshot))
                if stopping:
                    if batch_in_epoch >= steps:  # the epoch is complete: finish it properly first
                        break
                    raise Preempted(f"{run.root}: stopped by signal at epoch {epoch + 1}, step {step}; "
                                    f"{run.last} saved, run again to resume")
            bar.close()
            seconds = time.perf_counter() - started

            # -------------------------------------------------------------- epoch end
            totals = global_sums(sums)
            try:
                evaluation = evaluate(_unwrap(model), val_src, config.eval_frame_counts,
                                      frame_size=config.frame_size, resize_size=config.resize_size,
                                      batch_size=per_rank_batch, num_workers=config.num_workers, device=device,
                                      max_videos=config.val_max_videos, autocast_dtype=amp, world=world,
                                      progress=progress, should_stop=lambda: stop.signum is not None)
            except EvaluationStopped:
                # the epoch's training is done: keep it, and validate first thing after the resume
                if world.is_main:
                    save_checkpoint(run.last, state_dict(epoch, steps, totals))
                raise Preempted(f"{run.root}: stopped by signal while validating epoch {epoch + 1}; "
                                f"{run.last} saved, run again to resume") from None
            epoch += 1
            skip = 0
            samples = totals["samples"]
            line = {"epoch": epoch, "step": step, "lr": lr}
            line.update({f"train_{k}": totals[k] / samples for k in totals
                         if k not in ("correct", "samples", "frames")})
            line["train_top1"] = 100.0 * totals["correct"] / samples
            for row in evaluation.table.itertuples():
                line[f"val_top1_{row.eval_frames}"] = row.top1
                line[f"val_top5_{row.eval_frames}"] = row.top5
            # throughput of this process's part of the epoch (all of it unless resumed mid-epoch)
            line.update({"seconds": seconds, "clips_per_s": (samples - untimed["samples"]) / seconds,
                         "frames_per_s": (totals["frames"] - untimed["frames"]) / seconds})
            improved = line[f"val_top1_{high_eval}"] > best.get(f"top1_{high_eval}", -1.0)
            if improved:
                best = {f"top1_{t}": line[f"val_top1_{t}"] for t in config.eval_frame_counts}
                best["epoch"] = epoch
            if world.is_main:
                with open(run.metrics, "a") as f:
                    f.write(json.dumps(line) + "\n")
                history.append(line)
                state = state_dict(epoch, 0, {})
                save_checkpoint(run.last, state)
                if improved:
                    save_checkpoint(run.best, state)
                if config.keep_epoch_checkpoints:
                    save_checkpoint(run.epoch(epoch), state)
                log.info("epoch %d/%d  loss %.4f  train top-1 %.1f  val top-1 %s  %.0f s",
                         epoch, config.epochs, line["train_loss"], line["train_top1"],
                         " ".join(f"{t}F {line[f'val_top1_{t}']:.1f}" for t in config.eval_frame_counts), seconds)
            if stop.signum is not None:
                raise Preempted(f"{run.root}: stopped by signal after epoch {epoch}; {run.last} saved, "
                                f"run again to resume")
        if world.is_main and (not run.final.exists() or load_checkpoint(run.final, mmap=True)["step"] != step):
            save_checkpoint(run.final, state_dict(epoch, 0, {}))
        dist_utils.barrier(world)
    finally:
        if world.is_main:
            run.pid.unlink(missing_ok=True)  # before the handlers go: nobody signals an unguarded process
        stop.restore()
    return FitResult(run.root, config, model.eval(), history, best)

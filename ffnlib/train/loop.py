"""`fit`: one training loop for every model of the study, that never loses work.

The model folder (`ffnlib.runs.ModelRun`) is locked while `fit` trains into it. A folder that holds
`last.pt` resumes from it (a finished one whose `last.pt` was removed, from `final.pt`), to the same
metrics as an uninterrupted run (CPU, deterministic mode): data order and augmentation are pure
functions of (seed, epoch, index) and the RNG of dropout is restored. A folder with results of an
earlier run but nothing to resume from is refused unless `restart=True`, which starts afresh.

SIGTERM or SIGUSR1: `last.pt` is written at the next step boundary (or validation batch) and
`Preempted` is raised; the command line then exits with REQUEUE_EXIT_CODE (75), which the SLURM
scripts requeue on. A NaN or inf loss raises `NonFiniteLoss` naming the step; the last good
checkpoint stays. The order of the writes at an epoch's end is in `ffnlib.train.checkpoint`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ffnlib.paths import leftover_temporaries, write_text_atomic
from ffnlib.runs import ModelRun, RunFolderError

from . import distributed as dist_utils
from .checkpoint import check_fits, load_checkpoint, load_model_state, new_checkpoint_id, save_checkpoint
from .config import TrainConfig
from .data import TrainingLoader, epoch_batches, open_splits, steps_in_epoch, train_view
from .evaluate import EvaluationStopped, evaluate
from .optim import lr_at, set_lr
from .setup import Trainee, check_model, configure_torch, finetune_source, init_finetune
from .signals import Preempted, StopRequest
from .step import NonFiniteLoss, add_step, train_step

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    model_dir: Path
    config: TrainConfig
    model: nn.Module
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)


@dataclass
class Progress:
    """Where training stands: what a checkpoint restores."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps done
    batch_in_epoch: int = 0  # batches of the current epoch done
    partial: dict = field(default_factory=dict)  # the current epoch's sums so far (all ranks)
    epoch_seconds: float = 0.0  # training seconds of the current epoch so far
    lr: float | None = None  # the current epoch's last learning rate
    best: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # metrics lines
    init: dict | None = None  # finetune: the checkpoint it started from ({"path", "checkpoint_id", "step"})


def fit(config: TrainConfig, model_dir: str | Path, *, progress: bool = True, restart: bool = False) -> FitResult:
    """Train `config` in `model_dir` (resuming what is there) and return the model.

    `restart`: delete the folder's checkpoints, metrics and evaluations first and train afresh."""
    run = ModelRun(model_dir)
    world = dist_utils.init_world(config.device)
    device = dist_utils.resolve_device(config.device, world)
    config = dist_utils.world_config(config, world, device)  # the global batch and lr on this many ranks
    check_model(config)  # arch and model_kwargs, before any data is opened
    for key in config.inert():
        log.warning("%s=%r does not act in recipe %s: ignored", key, getattr(config, key), config.recipe)
    finetune_from = None
    if config.recipe == "finetune" and (restart or not (run.last.exists() or run.final.exists())):
        finetune_from = finetune_source(config, run.root)  # before any data is opened: a missing source is named
    configure_torch(config, device, world)
    with run.lock("training") if world.is_main else contextlib.nullcontext():
        if world.is_main and restart:
            run.clear()
        if world.is_main:
            train_src, val_src = open_splits(config, progress)  # the built-in data is written here, once
        dist_utils.barrier(world)
        if not world.is_main:
            train_src, val_src = open_splits(config)
        dataset = train_view(config, train_src)
        steps = steps_in_epoch(config, len(dataset))
        trainee = Trainee.build(config, train_src.num_classes, device, world)
        state = resume(run, trainee, world)
        if finetune_from is not None and state.step == 0:
            state.init = init_finetune(trainee.model, config, finetune_from, train_src.num_classes)
        loop = _Loop(config, run, world, trainee, dataset, val_src, steps, train_src.num_classes, state, progress)
        stop = StopRequest()
        stop.install()  # before the pid file appears: a signal sent as soon as it exists is caught
        if world.is_main:  # "PID HOST": on several nodes, only the trainer's own node signals it
            run.pid.write_text(f"{os.getpid()} {socket.gethostname()}\n")
        try:
            while state.epoch < config.epochs:
                totals = loop.train_epoch(stop)
                loop.end_epoch(totals, loop.validate(totals, stop))
                if stop.requested:
                    raise Preempted(f"{run.root}: stopped by signal after epoch {state.epoch}; {run.last} saved, "
                                    f"run again to resume")
            loop.finish()
        finally:
            if world.is_main:
                run.pid.unlink(missing_ok=True)  # before the handlers go: nobody signals an unguarded process
            stop.restore()
            loop.loader.close()
    return FitResult(run.root, config, trainee.model.eval(), state.history, state.best)


def resume(run: ModelRun, trainee: Trainee, world: dist_utils.World) -> Progress:
    """Load `run`'s resume point into `trainee` and return where training stands; write config.yaml.

    The resume point is last.pt, else final.pt; a folder that holds results of an earlier run but
    neither is refused (a silent retraining would overwrite them)."""
    config, state = trainee.config, Progress()
    path = run.last if run.last.exists() else run.final if run.final.exists() else None
    if world.is_main:
        history = run.read_metrics()
    if path is None:
        leftovers = [p.name for p in (run.metrics, run.best) if p.exists()] + [p.name for p in run.checkpoints.glob("epoch_*.pt")]
        if world.is_main and (history or leftovers):
            raise RunFolderError(f"{run.root} holds {', '.join(leftovers)} of an earlier run but no last.pt or "
                                 f"final.pt to resume from: restart it (--restart, fit(restart=True)) to train "
                                 f"it from scratch, or use another folder")
    else:
        saved = load_checkpoint(path)
        if saved.get("source"):
            raise RunFolderError(f"{run.root} holds a model imported from {saved['source'].get('official', 'elsewhere')}, "
                                 f"not one trained here: train into another folder")
        check_fits(saved["config"], config, path)
        load_model_state(trainee.model, saved["model"], str(path))
        trainee.optimizer.load_state_dict(saved["optimizer"])
        trainee.scaler.load_state_dict(saved["scaler"])
        state = Progress(saved["epoch"], saved["step"], saved["batch_in_epoch"], dict(saved["partial"]),
                         saved.get("epoch_seconds", 0.0), saved.get("lr"), dict(saved["best"]), init=saved.get("init"))
        if world.is_main:
            torch.set_rng_state(saved["rng"]["torch"])
            if trainee.device.type == "cuda" and saved["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(saved["rng"]["cuda"], trainee.device)
        else:
            torch.manual_seed(config.seed * 1000 + world.rank + 7919 * state.step)
        log.info("resuming %s at epoch %d, step %d (from %s)", run.root, state.epoch + 1, state.step, path.name)
        if world.is_main:
            history = reconcile_metrics(run, history, state.epoch, saved.get("metrics_line"))
    if world.is_main:
        state.history = history
        for stale in leftover_temporaries(run.checkpoints):  # left by a process killed while writing
            stale.unlink()
        write_text_atomic(run.config, config.to_yaml())  # the checkpoints hold the config too
    return state


def reconcile_metrics(run: ModelRun, history: list[dict], epoch: int, line: dict | None) -> list[dict]:
    """`metrics.jsonl` as it must be beside a checkpoint after `epoch` epochs: the line of that epoch
    appended when its process died between last.pt and the line; lines of later epochs refused."""
    later = [m["epoch"] for m in history if m["epoch"] > epoch]
    if later:
        raise RunFolderError(f"{run.metrics} has epochs {later} but the checkpoint to resume is after epoch "
                             f"{epoch}: restore its last.pt, or restart the model")
    if line is not None and all(m["epoch"] != epoch for m in history):
        run.append_metrics(line)
        history = [*history, line]
    return history


class _Loop:
    """The parts of `fit` that run per epoch, sharing its set-up."""

    def __init__(self, config, run, world, trainee, dataset, val_src, steps, num_classes, state, progress):
        self.config, self.run, self.world, self.trainee = config, run, world, trainee
        self.dataset, self.val_src, self.steps, self.num_classes = dataset, val_src, steps, num_classes
        self.state, self.progress = state, progress
        self.loader = TrainingLoader(dataset, num_workers=config.num_workers, device=trainee.device)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self, sums: dict, metrics_line: dict | None = None) -> dict:
        t, s = self.trainee, self.state
        return {
            "model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(), "scaler": t.scaler.state_dict(),
            "scheduler": {"name": self.config.lr_schedule, "step": s.step}, "epoch": s.epoch, "step": s.step,
            "batch_in_epoch": s.batch_in_epoch, "partial": sums, "epoch_seconds": s.epoch_seconds, "lr": s.lr,
            "best": s.best, "metrics_line": metrics_line, "num_classes": self.num_classes,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(t.device) if t.device.type == "cuda" else None},
            "config": self.config.to_dict(), "checkpoint_id": new_checkpoint_id(), "init": s.init,
        }

    def global_sums(self, sums: dict) -> dict:
        if not self.world.distributed:
            return dict(sums)
        keys = sorted(sums)
        t = dist_utils.all_reduce_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64,
                                                   device=self.trainee.device), self.world)
        return dict(zip(keys, t.tolist()))

    # ------------------------------------------------------------------ training
    def train_epoch(self, stop: StopRequest) -> dict:
        """The rest of the current epoch's steps; the epoch's sums over all ranks."""
        config, state, t, world = self.config, self.state, self.trainee, self.world
        batches = epoch_batches(config, len(self.dataset), state.epoch, self.steps, world)[state.batch_in_epoch:]
        # the epoch's running sums; those restored from a mid-epoch checkpoint are all ranks' together
        sums = {"loss": 0.0, "correct": 0.0, "samples": 0.0, "frames": 0.0, **(state.partial if world.is_main else {})}
        state.partial = {}
        bar = tqdm(total=self.steps, initial=state.batch_in_epoch, desc=f"epoch {state.epoch + 1}/{config.epochs}",
                   disable=not (self.progress and world.is_main), leave=False)
        t.model.train()
        started, before = time.perf_counter(), state.epoch_seconds
        for batch in self.loader.epoch(batches):  # each item names its epoch: persistent workers draw afresh
            state.lr = lr_at(state.step, self.steps, config)
            set_lr(t.optimizer, state.lr)
            try:
                loss, parts, logits, target = train_step(t.step_model, t.optimizer, t.scaler, batch, config,
                                                         t.device, t.amp, world, step=state.step)
            except NonFiniteLoss as e:  # where, said only when it happens (not built at every step)
                last = self.run.last if self.run.last.exists() else "none yet"
                raise NonFiniteLoss(f"{str(e).rstrip()} in {self.run.root} at epoch {state.epoch + 1}, step "
                                    f"{state.step + 1}; stopped without saving: the last good checkpoint is {last}"
                                    ) from None
            state.step += 1
            state.batch_in_epoch += 1
            n = add_step(sums, loss, parts, logits, target)
            sums["samples"] += n
            sums["frames"] += n * (self.trainee.frames_per_clip or batch[0].shape[2])  # proportional: the batch's T
            bar.update(1)
            bar.set_postfix({k: f"{sums[k] / sums['samples']:.3f}" for k in ("loss", *parts)}
                            | {"acc": f"{100 * sums['correct'] / sums['samples']:.1f}"}, refresh=False)
            state.epoch_seconds = before + time.perf_counter() - started
            stopping = dist_utils.any_rank(stop.requested, world, t.device)
            periodic = config.save_every_steps and state.step % config.save_every_steps == 0
            if (stopping or periodic) and state.batch_in_epoch < self.steps:
                snapshot = self.global_sums(sums)
                if world.is_main:
                    save_checkpoint(self.run.last, self.checkpoint_state(snapshot))
            if stopping and state.batch_in_epoch < self.steps:
                raise Preempted(f"{self.run.root}: stopped by signal at epoch {state.epoch + 1}, step {state.step}; "
                                f"{self.run.last} saved, run again to resume")
            if stopping:  # the epoch's training is complete: finish it properly first
                break
        bar.close()
        return self.global_sums(sums)

    def validate(self, totals: dict, stop: StopRequest):
        """The epoch-end validation; on a stop request, last.pt keeps the epoch's training."""
        config, t = self.config, self.trainee
        try:
            return evaluate(t.model, self.val_src, config.eval_frames,
                            frame_size=config.frame_size, resize_size=config.resize_size,
                            batch_size=config.batch_size // self.world.world_size, num_workers=config.num_workers,
                            device=t.device, max_videos=config.val_max_videos, autocast_dtype=t.amp,
                            world=self.world, progress=self.progress, should_stop=lambda: stop.requested)
        except EvaluationStopped:
            if self.world.is_main:
                save_checkpoint(self.run.last, self.checkpoint_state(totals))
            raise Preempted(f"{self.run.root}: stopped by signal while validating epoch {self.state.epoch + 1}; "
                            f"{self.run.last} saved, run again to resume") from None

    def end_epoch(self, totals: dict, evaluation) -> None:
        """The epoch's metrics line and checkpoints, written in the order `checkpoint` documents."""
        config, state = self.config, self.state
        state.epoch += 1
        samples = totals["samples"]
        lr = state.lr if state.lr is not None else lr_at(max(state.step - 1, 0), self.steps, config)
        line = {"epoch": state.epoch, "step": state.step, "lr": lr}
        line.update({f"train_{k}": v / samples for k, v in totals.items() if k not in ("correct", "samples", "frames")})
        line["train_top1"] = 100.0 * totals["correct"] / samples
        for row in evaluation.table.itertuples():
            line[f"val_top1_{row.eval_frames}"] = row.top1
            line[f"val_top5_{row.eval_frames}"] = row.top5
        seconds = max(state.epoch_seconds, 1e-9)  # the epoch's training, over every process that ran it
        line.update({"seconds": state.epoch_seconds, "clips_per_s": samples / seconds,
                     "frames_per_s": totals["frames"] / seconds})
        high = max(config.eval_frames)
        improved = line[f"val_top1_{high}"] > state.best.get(f"top1_{high}", -1.0)
        if improved:
            state.best = {**{f"top1_{t}": line[f"val_top1_{t}"] for t in config.eval_frames}, "epoch": state.epoch}
        state.batch_in_epoch, state.epoch_seconds, state.lr = 0, 0.0, None
        if self.world.is_main:
            checkpoint = self.checkpoint_state({}, metrics_line=line)
            if improved:
                save_checkpoint(self.run.best, checkpoint)
            if config.keep_epoch_checkpoints:
                save_checkpoint(self.run.epoch(state.epoch), checkpoint)
            save_checkpoint(self.run.last, checkpoint)  # the commit point of the epoch
            self.run.append_metrics(line)
            state.history.append(line)
            log.info("epoch %d/%d  loss %.4f  train top-1 %.1f  val top-1 %s  %.0f s", state.epoch, config.epochs,
                     line["train_loss"], line["train_top1"],
                     " ".join(f"{t}F {line[f'val_top1_{t}']:.1f}" for t in config.eval_frames), seconds)

    def finish(self) -> None:
        """final.pt, unless it already holds this step (a finished model run again)."""
        if self.world.is_main:
            run = self.run
            if not run.final.exists() or load_checkpoint(run.final, mmap=True)["step"] != self.state.step:
                save_checkpoint(run.final, self.checkpoint_state({}, metrics_line=(self.state.history or [None])[-1]))
            if self.state.best and not run.best.exists():
                log.warning("%s: the best epoch (%s) has no best.pt (removed?); evaluate final.pt instead",
                            run.root, self.state.best.get("epoch"))
        dist_utils.barrier(self.world)

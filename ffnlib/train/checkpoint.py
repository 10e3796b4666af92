"""Checkpoints: tensors and plain types only, written atomically, read with weights_only=True.

A checkpoint is a dict:
    model, optimizer, scaler    state dicts
    scheduler                   {"name", "step"} (the learning rate is a pure function of the step)
    epoch                       epochs completed
    step                        optimiser steps done
    batch_in_epoch              batches of the current epoch done (a checkpoint taken mid-epoch)
    partial                     the current epoch's running sums so far (all ranks together)
    epoch_seconds, lr           training seconds of the current epoch so far, and its last step's lr
    best                        {"top1_<T>": ..., "epoch": ...} of the best epoch so far
    metrics_line                the metrics.jsonl line of epoch `epoch` (None before the first epoch
                                ends): a resumed run appends it when the process that wrote the
                                checkpoint died before the line did
    num_classes, config         the classifier size and TrainConfig.to_dict()
    rng                         torch CPU/CUDA generator states
    checkpoint_id               a random id of these weights (the evaluation cache's key)
    init                        (finetune) the checkpoint it started from: {"path", "checkpoint_id", "step"}; else None
    source                      (imported models only) where the weights came from
    format                      FORMAT

Order of the writes at an epoch's end (`ffnlib.train.loop`): best.pt, epoch_N.pt, last.pt, then the
metrics line. A kill between any two leaves a folder that resumes to what an uninterrupted run
leaves: last.pt is the commit point, and what was written before it is written again.
"""
from __future__ import annotations

import errno
import logging
import uuid
from pathlib import Path

import torch

from ffnlib.errors import UserError
from ffnlib.paths import write_atomic

from .config import TrainConfig

log = logging.getLogger(__name__)

FORMAT = 2  # 1: before epoch_seconds, lr, metrics_line and checkpoint_id (still read)
# Changing these between a checkpoint and its resumption would train something else: refused (the
# recipe keys only where they act in the recipe, `TrainConfig.fit_identity`).
FIT_KEYS = ("recipe", "arch", "model_kwargs", "num_frames", "frame_counts", "frame_probs", "data_root",
            "builtin", "frame_size", "batch_size", "seed", "lam", "dataset", "frame_template", "train_split",
            "val_split", "fold", "skip_missing_videos", "distill", "private_bn", "adaconv", "weight_sharing",
            "mixup_prob", "mixup_alpha", "init_from")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read, or does not fit the model or config it is loaded into."""


def new_checkpoint_id() -> str:
    return uuid.uuid4().hex


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` through a temporary file in the same folder, fsynced, then renamed
    over it: a kill at any moment leaves either the previous file or the new one, never a partial
    one. A full disk or a read-only folder is a CheckpointError naming the file."""
    path = Path(path)
    state = {"checkpoint_id": new_checkpoint_id(), **state, "format": FORMAT}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, lambda f: torch.save(state, f), fsync=True)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
            raise CheckpointError(f"cannot write {path}: {e.strerror}; the previous checkpoint there is "
                                  f"intact (free space or fix the folder, then run again to resume)") from None
        raise


def load_checkpoint(path: str | Path, map_location="cpu", mmap: bool = False) -> dict:
    """The state `save_checkpoint` wrote. With `mmap`, tensors are read from the file only when used:
    for a look at the step, the seed or the number of classes of a large checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises many types for a damaged file; its text suggests unsafe loading
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}; truncated, damaged or "
                              f"not written by ffnlib): delete it to resume from another checkpoint, or "
                              f"restart the model") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an ffnlib checkpoint (expected a dict with a 'model' entry)")
    return state


def load_model_state(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Load `state_dict` strictly; on a mismatch raise naming the missing, unexpected and misshapen keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshapen = sorted(f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                       for k in set(own) & set(state_dict)
                       if hasattr(state_dict[k], "shape") and state_dict[k].shape != own[k].shape)
    if missing or unexpected or misshapen:
        def show(keys):
            return f"{keys[:5]}{' ...' if len(keys) > 5 else ''} ({len(keys)})"
        parts = [f"missing {show(missing)}" if missing else "",
                 f"unexpected {show(unexpected)}" if unexpected else "",
                 f"shape mismatch {show(misshapen)}" if misshapen else ""]
        raise CheckpointError(f"{source} does not fit the model {type(model).__name__}: "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict(state_dict)


def check_fits(saved: dict, config: TrainConfig, path: Path) -> None:
    """Refuse to resume checkpoint `path` (trained with config dict `saved`) under a `config` that
    trains something else (a FIT_KEYS difference where the key acts in the recipe); other differences
    are logged."""
    saved_config = TrainConfig.from_saved(saved, source=str(path))  # a key added since had its default then
    saved = saved_config.to_dict()
    current = config.to_dict()
    mine, theirs = config.fit_identity(FIT_KEYS), saved_config.fit_identity(FIT_KEYS)
    changed = {k: (saved.get(k), current[k]) for k in FIT_KEYS
               if (k in mine or k in theirs) and theirs.get(k) != mine.get(k)}
    if changed:
        detail = "; ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in changed.items())
        raise CheckpointError(f"{path} was trained with another config ({detail}); "
                              f"use another model folder or the checkpoint's config")
    others = sorted(k for k in current if k not in FIT_KEYS and saved.get(k) != current[k])
    if others:
        log.warning("resuming %s with changed settings: %s", path, ", ".join(others))

"""Feeding the loop: the splits of a config's data, the training view of its recipe, each epoch's
batches, and the DataLoader every part of training and evaluation reads through.

`epoch_batches` makes an epoch a pure function of (seed, epoch): the same videos in the same global
batches whatever the number of ranks or loader workers, which is what lets a killed run resume to
exactly the run it would have been.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ffnlib.datasets import DATA_KEYS, MultiFrameClips, VideoClips, open_train_val
from ffnlib.errors import ConfigError
from ffnlib.layouts import Split

from .config import TrainConfig
from .distributed import World
from .signals import ignore_stop_signals


def open_split(config: TrainConfig, split: str, progress: bool = True) -> Split:
    """Split "train" or "validation" of `config`'s data (layout `dataset` at `data_root`, or the
    built-in data, written once, with a bar if `progress`): both splits with the training split's
    classes; see `ffnlib.datasets.open_train_val`."""
    if split not in ("train", "validation"):
        raise ConfigError(f"split {split!r}: expected 'train' or 'validation'")
    return open_splits(config, progress)[0 if split == "train" else 1]


def open_splits(config: TrainConfig, progress: bool = True) -> tuple[Split, Split]:
    """The train and validation splits of `config`'s data (see `open_split`)."""
    return open_train_val(**{key: getattr(config, key) for key in DATA_KEYS}, progress=progress)


def train_view(config: TrainConfig, source: Split):
    """The dataset view the recipe trains on: one clip of `num_frames` (vanilla, finetune), one clip of
    the largest count (proportional: `epoch_batches` picks each batch's T), or one clip per frame count
    (ffn; mixed: the pair, one shared crop, mixed in the step)."""
    common = dict(train=True, frame_size=config.frame_size, resize_size=config.resize_size, seed=config.seed)
    if config.recipe in ("vanilla", "finetune"):
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


def epoch_batches(config: TrainConfig, num_videos: int, epoch: int, steps: int, world: World) -> list[list]:
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


def make_loader(dataset, *, batches=None, batch_size: int = 1, num_workers: int = 0,
                device: torch.device | str = "cpu", prefetch_factor: int | None = None,
                persistent_workers: bool = False) -> torch.utils.data.DataLoader:
    """The DataLoader of training, evaluation and the benchmarks: `batches` (lists of indices) as
    the batch sampler, or `batch_size` in order; workers that ignore SIGTERM/SIGUSR1 (the main
    process owns the stop); pinned memory on CUDA; a private generator, so the global RNG (dropout)
    is untouched."""
    sampler = dict(batch_sampler=batches) if batches is not None else dict(batch_size=batch_size, shuffle=False)
    workers = dict(worker_init_fn=ignore_stop_signals, persistent_workers=persistent_workers,
                   prefetch_factor=prefetch_factor) if num_workers > 0 else {}
    return torch.utils.data.DataLoader(dataset, num_workers=num_workers, generator=torch.Generator(),
                                       pin_memory=torch.device(device).type == "cuda", **sampler, **workers)

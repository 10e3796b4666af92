"""Feeding the loop: the splits of a config's data, the training view of its recipe, each epoch's
batches, the DataLoader every part of training and evaluation reads through, and the step from a
loader's clip to the model's input.

`epoch_batches` makes an epoch a pure function of (seed, epoch): the same videos in the same global
batches whatever the number of ranks or loader workers, which is what lets a killed run resume to
exactly the run it would have been. Its items are `SampleKey(index, epoch)`, so a sample is a pure
function of (seed, epoch, index) also in workers that outlive an epoch (`TrainingLoader`).

Layouts at the boundary: a view gives clips (C, T, S, S) uint8; the loader collates them into
(B, C, T, S, S) uint8 (pinned on CUDA); `model_input` copies a batch to the device (non-blocking) and
normalises it there, once per batch: the model gets (B, C, T, S, S) float32, normalised.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ffnlib.datasets import DATA_KEYS, MultiFrameClips, SampleKey, VideoClips, open_train_val
from ffnlib.errors import ConfigError
from ffnlib.layouts import Split
from ffnlib.transforms import normalize

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
    """This rank's batches for `epoch`, lists of `SampleKey(index, epoch)`: a pure function of
    (seed, epoch), the same on every rank.

    Global batch b is the same videos whatever the number of ranks; each rank takes every
    world_size-th of them. Several permutations are chained when `steps` asks for more than one pass.
    For the proportional recipe each key also holds the batch's T (`num_frames`), one drawn per
    global batch.
    """
    rng = np.random.default_rng([config.seed, epoch])
    need = steps * config.batch_size
    order = np.concatenate([rng.permutation(num_videos) for _ in range(math.ceil(need / num_videos))])[:need]
    per_rank = config.batch_size // world.world_size
    mine = order.reshape(steps, config.batch_size)[:, world.rank::world.world_size][:, :per_rank]
    counts = [None] * steps
    if config.recipe == "proportional":
        t_rng = np.random.default_rng([config.seed, epoch, 1])
        probs = np.asarray(config.frame_probs) if config.frame_probs else None
        counts = [int(t) for t in t_rng.choice(np.asarray(config.frame_counts), size=steps, p=probs)]
    return [[SampleKey(int(i), int(epoch), t) for i in row] for row, t in zip(mine, counts)]


def make_loader(dataset, *, batches=None, batch_size: int = 1, num_workers: int = 0,
                device: torch.device | str = "cpu", prefetch_factor: int | None = None,
                persistent_workers: bool = False) -> torch.utils.data.DataLoader:
    """The DataLoader of training, evaluation and the benchmarks: `batches` (lists of indices or
    `SampleKey`s) as the batch sampler, or `batch_size` in order; workers that ignore SIGTERM/SIGUSR1
    (the main process owns the stop); pinned memory on CUDA, so that `model_input`'s copies run
    asynchronously; a private generator, so the global RNG (dropout) is untouched."""
    sampler = dict(batch_sampler=batches) if batches is not None else dict(batch_size=batch_size, shuffle=False)
    workers = dict(worker_init_fn=ignore_stop_signals, persistent_workers=persistent_workers,
                   prefetch_factor=prefetch_factor) if num_workers > 0 else {}
    return torch.utils.data.DataLoader(dataset, num_workers=num_workers, generator=torch.Generator(),
                                       pin_memory=torch.device(device).type == "cuda", **sampler, **workers)


def model_input(clip: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A loader's clip batch as the model's input on `device`: uint8 (B, C, T, S, S) is copied there
    (non-blocking: the loader pins its batches on CUDA) and normalised there (`normalize`, once per
    batch) into float32 (B, C, T, S, S). A floating-point clip is taken as model input already (the
    synthetic batches of tests and benchmarks) and only moved."""
    clip = clip.to(device, non_blocking=True)
    return normalize(clip) if clip.dtype == torch.uint8 else clip


class _EpochBatches:
    """A batch sampler whose batches are replaced before each epoch (`TrainingLoader.epoch`)."""

    def __init__(self):
        self.batches: list = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class TrainingLoader:
    """The training loader of one `fit`, built once: with workers, they are persistent and serve every
    epoch (no start-up per epoch; each item carries its epoch, see `epoch_batches`). `epoch(batches)`
    iterates one epoch's (rest of its) batches; `close()` ends the workers."""

    def __init__(self, dataset, *, num_workers: int = 0, device: torch.device | str = "cpu",
                 prefetch_factor: int | None = None):
        self._batches = _EpochBatches()
        self.loader = make_loader(dataset, batches=self._batches, num_workers=num_workers, device=device,
                                  prefetch_factor=prefetch_factor, persistent_workers=num_workers > 0)

    def epoch(self, batches: list):
        """An iterator over `batches` (this rank's lists of `SampleKey`), collated."""
        self._batches.batches = list(batches)
        return iter(self.loader)

    def close(self) -> None:
        """End the workers now (a persistent iterator would otherwise keep them until it is freed,
        which an exception's traceback can delay past the interpreter's exit, where they would hang it:
        they ignore SIGTERM)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

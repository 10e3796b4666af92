"""Evaluation at any frame count: 1 clip x 1 centre crop, the protocol of the paper's tables.

`evaluate` returns a long table (one row per evaluated T) and per-class accuracy. An FFN model picks
its nearest branch by itself (its single-clip forward), so one function serves every model. Each
video is decoded once for several T (decoding, not the small network, is what evaluation costs on
the built-in data).
`recalibrate_bn` re-estimates BatchNorm statistics at another T (how much of TFD is BN statistics).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ffnlib.datasets import MultiFrameClips, VideoClips

from .data import make_loader, model_input
from .distributed import World, all_reduce_sum, any_rank

log = logging.getLogger(__name__)

class EvaluationStopped(RuntimeError):
    """`evaluate` was asked to stop (a SIGTERM/SIGUSR1 arrived during validation)."""


TABLE_COLUMNS = ["model", "train_frames", "eval_frames", "top1", "top5", "n"]


@dataclass
class Evaluation:
    """`table`: model, train_frames, eval_frames, top1, top5 (percent), n. `per_class`: eval_frames,
    label, class_name, top1 (percent), n."""

    table: pd.DataFrame
    per_class: pd.DataFrame


FRAMES_PER_PASS = 32  # frames of all T decoded into one sample at most (twice a 16F clip's memory)


def frame_count_groups(frame_counts: Sequence[int], frames_per_pass: int = FRAMES_PER_PASS) -> list[list[int]]:
    """The distinct T of `frame_counts`, ascending, in groups of at most `frames_per_pass` frames in
    all (a T larger than that is a group of its own): one decoding pass over the videos per group."""
    groups, total = [], 0
    for t in sorted({int(t) for t in frame_counts}):
        if groups and total + t <= frames_per_pass:
            groups[-1].append(t)
            total += t
        else:
            groups.append([t])
            total = t
    return groups


def shuffle_time(clip: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`clip` (B, C, T, H, W) with the frames of each clip put in a random order."""
    b, _, t = clip.shape[:3]
    order = torch.stack([torch.randperm(t, generator=generator) for _ in range(b)])  # (B, T)
    index = order[:, None, :, None, None].expand_as(clip)
    return torch.gather(clip, 2, index)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    source,
    eval_frames: Sequence[int],
    *,
    frame_size: int,
    resize_size: int,
    batch_size: int = 32,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    max_videos: int = 0,
    shuffle_frames: bool = False,
    name: str = "",
    train_frames: str = "",
    autocast_dtype: torch.dtype | None = None,
    world: World = World(),
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    frames_per_pass: int = FRAMES_PER_PASS,
) -> Evaluation:
    """Top-1/top-5 of `model` on `source` (an SSv2 split) at each T in `eval_frames`; the table's
    `model` and `train_frames` columns say `name` and `train_frames`.

    Test sampling (segment centres) and the test crop. `max_videos` > 0 keeps the first that many
    videos. `shuffle_frames` puts each clip's frames in a random (seeded) order: a model that uses
    temporal order falls towards chance. Under DDP each rank evaluates its share and counts are
    summed, so every rank returns the same result. `should_stop` is asked between batches (every
    rank agrees on the answer): when it says yes, `EvaluationStopped` is raised. Each video is
    decoded once per group of T (`frame_count_groups`); test sampling and the centre crop are
    deterministic, so a clip is the same whichever T it is decoded beside.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    num_videos = len(source) if max_videos <= 0 else min(max_videos, len(source))
    shard = range(world.rank, num_videos, world.world_size)
    num_classes = len(source.classes)
    # per T and class: [videos, top-1 correct, top-5 correct]
    counts = {}
    try:
        for group in frame_count_groups(eval_frames, frames_per_pass):
            dataset = MultiFrameClips(source, group, train=False, frame_size=frame_size, resize_size=resize_size)
            generators = {t: torch.Generator().manual_seed(t) for t in group}
            for t in group:
                counts[t] = torch.zeros(num_classes, 3, dtype=torch.float64)
            batches = make_loader(torch.utils.data.Subset(dataset, list(shard)), batch_size=batch_size,
                                  num_workers=num_workers, device=device)
            for *clips, label in tqdm(batches, desc=f"eval {'/'.join(map(str, group))}F", leave=False,
                                      disable=not (progress and world.is_main)):
                if should_stop is not None and any_rank(should_stop(), world, device):
                    raise EvaluationStopped(f"evaluation stopped at {group}F on request")
                for t, clip in zip(group, clips):  # clip (B, C, t, H, W)
                    if shuffle_frames:
                        clip = shuffle_time(clip, generators[t])
                    clip = model_input(clip, device)  # (B, C, t, H, W) uint8 -> float32 normalised, on the device
                    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                        logits = model(clip)  # (B, classes)
                    top5 = logits.float().topk(min(5, num_classes), dim=1).indices.cpu()  # (B, 5)
                    hit1 = (top5[:, 0] == label).double()
                    hit5 = (top5 == label[:, None]).any(dim=1).double()
                    counts[t].index_add_(0, label, torch.stack([torch.ones_like(hit1), hit1, hit5], dim=1))
            for t in group:
                all_reduce_sum(counts[t], world)
    finally:
        model.train(was_training)
    rows, per_class_rows = [], []
    for num_frames in dict.fromkeys(int(t) for t in eval_frames):  # the caller's order, once each
        n, c1, c5 = counts[num_frames].sum(dim=0).tolist()
        rows.append({"model": name, "train_frames": train_frames, "eval_frames": num_frames,
                     "top1": 100.0 * c1 / max(n, 1), "top5": 100.0 * c5 / max(n, 1), "n": int(n)})
        for label in range(num_classes):
            n_c, c1_c, _ = counts[num_frames][label].tolist()
            per_class_rows.append({"eval_frames": num_frames, "label": label, "class_name": source.classes[label],
                                   "top1": 100.0 * c1_c / n_c if n_c else float("nan"), "n": int(n_c)})
    return Evaluation(pd.DataFrame(rows, columns=TABLE_COLUMNS), pd.DataFrame(per_class_rows))


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    source,
    num_frames: int,
    *,
    frame_size: int,
    resize_size: int,
    num_batches: int = 50,
    batch_size: int = 32,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on `num_frames`-frame clips of `source`.

    Statistics are reset and recomputed as a plain average over `num_batches` batches of training
    clips (train sampling and crop) at the new T; weights are untouched. For an FFN only the branch
    the clips route to is updated. The model is returned in eval mode.
    """
    device = torch.device(device)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts the same
    dataset = VideoClips(source, num_frames=num_frames, train=True, frame_size=frame_size,
                         resize_size=resize_size, seed=seed)
    order = np.random.default_rng(seed).permutation(len(dataset))[: num_batches * batch_size]
    model.train()
    try:
        for clip, _ in make_loader(torch.utils.data.Subset(dataset, order.tolist()), batch_size=batch_size,
                                   num_workers=num_workers, device=device):
            model(model_input(clip, device))  # (B, C, T, H, W) float32 normalised
    finally:
        for m, momentum, state in zip(norms, momenta, saved):
            m.momentum = momentum
            if int(m.num_batches_tracked) == 0:  # not on this T's path (another FFN branch): keep it
                m.load_state_dict(state)
        model.eval()
    return model

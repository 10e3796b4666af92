"""Figures of the data for notebooks 01 (the dataset) and 02 (sampling): each returns a Figure.

Figures are built with `matplotlib.figure.Figure`, not pyplot, so nothing is left open in pyplot's
global state; a notebook shows one by leaving it as the cell's last value. A video is named as
`ffnlib.display.video_title` names it (its sample index in the split, its class, its file id), the
same in every title and dropdown; frames are enlarged by whole pixels (`ffnlib.plots.frames.upscale`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ffnlib import sampling
from ffnlib.datasets import SampleDraw, decode_sample
from ffnlib.display import video_title
from ffnlib.plots.frames import upscale
from ffnlib.transforms import denormalize

_TRAIN_COLOUR, _TEST_COLOUR, _CROP_COLOUR = "tab:blue", "tab:red", "yellow"
_MAX_NAMED_CLASSES = 40  # above this, the class histogram is drawn without one tick per class


def class_histogram(labels: Sequence[int], classes: Sequence[str], title: str = "videos per class") -> Figure:
    """Number of videos of each class: one bar per class, named; sorted counts beyond 40 classes."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))  # (num_classes,)
    if len(classes) <= _MAX_NAMED_CLASSES:
        fig = Figure(figsize=(8, 0.3 * len(classes) + 1.2), layout="constrained")
        ax = fig.add_subplot()
        ax.barh(np.arange(len(classes)), counts, color=_TRAIN_COLOUR)
        ax.set_yticks(np.arange(len(classes)), [f"{i}: {name}" for i, name in enumerate(classes)], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("videos")
    else:
        order = np.argsort(-counts, kind="stable")
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.add_subplot()
        ax.bar(np.arange(len(classes)), counts[order], width=1.0, color=_TRAIN_COLOUR)
        ax.set_xlabel(f"class, most to least frequent ({len(classes)} classes)")
        ax.set_ylabel("videos")
        for rank in (0, len(classes) - 1):
            ax.annotate(classes[order[rank]], (rank, counts[order[rank]]), fontsize=7,
                        xytext=(0, 4), textcoords="offset points", ha="left" if rank == 0 else "right")
    ax.set_title(f"{title} ({counts.sum()} videos)")
    return fig


def length_histogram(num_video_frames: Sequence[int], frame_counts: Sequence[int] = sampling.FRAME_COUNTS,
                     title: str = "video length") -> Figure:
    """Distribution of N (frames per video), with each frame count T marked: below it, frames repeat."""
    lengths = np.asarray(num_video_frames, dtype=np.int64)
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.add_subplot()
    bins = np.arange(lengths.min(), lengths.max() + 2) - 0.5 if np.ptp(lengths) < 80 else 40
    ax.hist(lengths, bins=bins, color="0.55")
    for t in frame_counts:
        ax.axvline(t, color=_TEST_COLOUR, linestyle="--", linewidth=1)
        ax.annotate(f"T={t}", (t, 1), xycoords=("data", "axes fraction"), xytext=(2, -12),
                    textcoords="offset points", fontsize=8, color=_TEST_COLOUR)
    short = {t: int((lengths < t).sum()) for t in frame_counts}
    ax.set_xlabel("frames per video (N)")
    ax.set_ylabel("videos")
    ax.set_title(f"{title}: {len(lengths)} videos, median {np.median(lengths):.0f} frames; "
                 + ", ".join(f"N < {t}: {n}" for t, n in short.items()), fontsize=9)
    ax.set_xlim(0, lengths.max() + 2)
    return fig


def video_grid(source, indices: Sequence[int], num_frames_shown: int = 8) -> Figure:
    """One row per video: `num_frames_shown` frames at the test segment centres, titled with the class."""
    rows = []
    for index in indices:
        video = decode_sample(source, index)
        frame_idx = sampling.centre_indices(video.num_frames, num_frames_shown)
        rows.append((f"{video_title(source, index)}, {video.num_frames} frames", upscale(video.rgb(frame_idx)),
                     frame_idx))
    height, width = rows[0][1].shape[1:3]
    cell = 1.4
    fig = Figure(figsize=(cell * num_frames_shown * max(width / height, 0.5), (cell + 0.35) * len(rows)),
                 layout="constrained")
    grid = fig.subfigures(len(rows), 1, squeeze=False)[:, 0]
    for sub, (title, frames, frame_idx) in zip(grid, rows):
        sub.suptitle(title, fontsize=9, x=0.01, ha="left")
        axes = sub.subplots(1, num_frames_shown, squeeze=False)[0]
        for ax, frame, i in zip(axes, frames, frame_idx):
            ax.imshow(frame, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"frame {i}", fontsize=7)
    return fig


def draws_over_epochs(view, index: int, num_epochs: int,
                      frame_counts: Sequence[int] | None = None) -> list[SampleDraw]:
    """What sample `index` of a view draws in epochs 0..num_epochs-1 (the view's epoch is restored);
    `frame_counts` overrides the view's own, as `VideoClips[(index, num_frames)]` does."""
    epoch = view.epoch
    video = decode_sample(view.source, index)
    draws = []
    try:
        for e in range(num_epochs):
            view.set_epoch(e)
            draws.append(view.draw(index, video, frame_counts))
    finally:
        view.set_epoch(epoch)
    return draws


def sampling_timeline(num_video_frames: int, frame_counts: Sequence[int], train_draws: Sequence[Sequence[np.ndarray]],
                      title: str = "", draw_label: str = "draw") -> Figure:
    """Segment sampling on one video, one panel per frame count T.

    Each panel spans frames 0..N-1. Its top row shows the test segments (N / T frames each, shaded
    alternately) and their centres (red crosses); below, one row per entry of `train_draws` (e.g. one
    per epoch, named `draw_label` k) shows the train segments (N // T frames each) and the frame drawn in each (blue dots).
    Frames that train sampling never reaches (the last N % T) are hatched. `train_draws[k][i]` is the
    index set of draw k for `frame_counts[i]`.
    """
    n = int(num_video_frames)
    fig = Figure(figsize=(10, 0.25 * (len(train_draws) + 1) * len(frame_counts) + 0.9 * len(frame_counts)),
                 layout="constrained")
    axes = fig.subplots(len(frame_counts), 1, squeeze=False, sharex=True)[:, 0]
    for i, (ax, t) in enumerate(zip(axes, frame_counts)):
        rows = len(train_draws) + 1
        # the test row, at the top: segments of N / T frames, centres
        tick = n / t
        for k in range(t):
            ax.add_patch(Rectangle((k * tick - 0.5, rows - 1 - 0.4), tick, 0.8,
                                   color=_TEST_COLOUR, alpha=0.08 if k % 2 else 0.18, linewidth=0))
        centres = sampling.centre_indices(n, t)
        ax.plot(centres, np.full(t, rows - 1), "x", color=_TEST_COLOUR, markersize=5)
        # the train rows: segments of N // T frames, one draw each
        segment = n // t
        for row, draw in enumerate(train_draws):
            y = rows - 2 - row
            if segment > 0:
                for k in range(t):
                    ax.add_patch(Rectangle((k * segment - 0.5, y - 0.4), segment, 0.8,
                                           color=_TRAIN_COLOUR, alpha=0.08 if k % 2 else 0.18, linewidth=0))
                if n % t:
                    ax.add_patch(Rectangle((segment * t - 0.5, y - 0.4), n % t, 0.8, fill=False,
                                           hatch="////", edgecolor="0.6", linewidth=0))
            ax.plot(draw[i], np.full(len(draw[i]), y), "o", color=_TRAIN_COLOUR, markersize=3.5)
        ax.set_yticks(np.arange(rows), [f"{draw_label} {rows - 2 - y}" for y in range(rows - 1)] + ["test"],
                      fontsize=7)
        ax.set_ylim(-0.6, rows - 0.4)
        ax.set_ylabel(f"T={t}", rotation=0, ha="right", va="center", fontsize=10)
        ax.set_xlim(-1, n)
    axes[-1].set_xlabel(f"frame index (N = {n} frames)")
    fig.suptitle(title or f"TSN segment sampling: test centres (red) and {len(train_draws)} train draws (blue)",
                 fontsize=10)
    return fig


def view_timeline(view, index: int, num_epochs: int = 3) -> Figure:
    """`sampling_timeline` of sample `index` of a view, with its train draws of epochs 0..num_epochs-1."""
    draws = draws_over_epochs(view, index, num_epochs)
    n = decode_sample(view.source, index).num_frames
    return sampling_timeline(n, draws[0].frame_counts, [d.frame_idx for d in draws], draw_label="epoch",
                             title=f"{video_title(view.source, index)}: test centres (red), train draws of "
                                   f"epochs 0..{num_epochs - 1} (blue)")


def shared_crop(view, index: int, frames_per_clip: int = 4) -> Figure:
    """The one crop of a train sample, on real frames: top, frames of the video with the crop box;
    below, one row per clip (frame count) as the network sees it, denormalised.

    `view` is a MultiFrameClips or VideoClips in train mode; its current epoch is used.
    """
    video = decode_sample(view.source, index)
    draw = view.draw(index, video)
    clips, _ = view.load(index)
    if draw.crop is None:
        raise ValueError("shared_crop needs a view in train mode (test mode has a fixed centre crop)")
    shown_idx = sampling.centre_indices(video.num_frames, frames_per_clip)
    columns = max(frames_per_clip, 2)
    fig = Figure(figsize=(1.8 * columns, 1.75 * (len(clips) + 1) + 0.5), layout="constrained")
    axes = fig.subplots(len(clips) + 1, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_off()
    box = draw.crop
    for ax, i, frame in zip(axes[0], shown_idx, video.rgb(shown_idx)):
        ax.set_axis_on()
        ax.imshow(frame, interpolation="nearest")
        ax.add_patch(Rectangle((box.left - 0.5, box.top - 0.5), box.width, box.height,
                               fill=False, edgecolor=_CROP_COLOUR, linewidth=1.5))
        ax.set_title(f"frame {i}", fontsize=8)
    axes[0, 0].set_ylabel("source", fontsize=8)
    for row, (clip, t, idx) in enumerate(zip(clips, draw.frame_counts, draw.frame_idx), start=1):
        frames = denormalize(clip)  # (T, S, S, 3)
        picks = np.unique(np.linspace(0, t - 1, min(frames_per_clip, t)).round().astype(int))
        for ax, p in zip(axes[row], picks):
            ax.set_axis_on()
            ax.imshow(frames[p], interpolation="nearest")
            ax.set_title(f"{t}F step {p}: frame {idx[p]}", fontsize=7)
        axes[row, 0].set_ylabel(f"{t}F clip", fontsize=8)
    fig.suptitle(f"one crop for every frame of every clip: {box.height} high x {box.width} wide at "
                 f"(top {box.top}, left {box.left}) of {video.height}x{video.width}, resized to "
                 f"{view.frame_size}x{view.frame_size}", fontsize=9)
    return fig


def sample_overview(view, index: int, num_frames: int, num_epochs: int = 3) -> Figure:
    """One video and one frame count T: where its T frames fall in epochs 0..num_epochs-1 and in test
    mode, then the T frames of the current epoch as the network sees them (cropped and resized).
    The figure behind the interactive control of notebook 02."""
    video = decode_sample(view.source, index)
    n = video.num_frames
    draws = draws_over_epochs(view, index, num_epochs, (num_frames,))
    current = view.draw(index, video, (num_frames,))
    clips, _ = view.load(index, (num_frames,))  # the same draw as `current`
    frames = upscale(denormalize(clips[0]))  # (T, S, S, 3), S enlarged by a whole factor
    per_row = min(num_frames, 8)
    rows = int(np.ceil(num_frames / per_row))
    fig = Figure(figsize=(10, 2.4 + 1.3 * rows), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.9, 1.3 * rows + 0.2])
    ax = top.subplots()
    tick = n / num_frames
    for k in range(num_frames):
        ax.axvspan(k * tick - 0.5, (k + 1) * tick - 0.5, color=_TEST_COLOUR, alpha=0.06 if k % 2 else 0.14,
                   linewidth=0)
    ax.plot(sampling.centre_indices(n, num_frames), np.zeros(num_frames), "x", color=_TEST_COLOUR,
            label="test: segment centres")
    for e, d in enumerate(draws, start=1):
        ax.plot(d.frame_idx[0], np.full(num_frames, e), "o", color=_TRAIN_COLOUR, markersize=3.5,
                label="train: one frame per segment" if e == 1 and view.train else None)
    row = view.epoch + 1 if view.train else 0
    ax.plot(current.frame_idx[0], np.full(num_frames, row), "o", mfc="none", mec="k", markersize=8,
            label="shown below")
    ax.set_yticks(np.arange(num_epochs + 1), ["test"] + [f"epoch {e}" for e in range(num_epochs)], fontsize=7)
    ax.set_ylim(-0.6, num_epochs + 0.6)
    ax.set_xlim(-1, n)
    ax.set_xlabel(f"frame index (N = {n})", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    top.suptitle(f"{video_title(view.source, index)}, T = {num_frames}, {'train' if view.train else 'test'} mode",
                 fontsize=10)
    axes = bottom.subplots(rows, per_row, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < num_frames:
            ax.imshow(frames[k], interpolation="nearest")
            ax.set_title(f"frame {current.frame_idx[0][k]}", fontsize=8)
    return fig

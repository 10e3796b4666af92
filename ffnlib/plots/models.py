"""Figures about the models (notebooks 03 and 06). Each function returns a matplotlib Figure."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ffnlib.models import nearest_count, temporal_shift


def shift_figure(num_frames: int = 6, channels: int = 16, fold_div: int = 8) -> Figure:
    """The temporal shift on a toy clip: one video, `num_frames` frames, `channels` channels, 1x1 pixels.

    Every value is the number of the frame it belongs to (1..T), so after the shift each cell shows
    where it came from; 0 marks the zero padding.
    """
    values = torch.arange(1, num_frames + 1, dtype=torch.float32)[:, None].expand(num_frames, channels)
    x = values.reshape(num_frames, channels, 1, 1)  # (N*T, C, H, W) with N = 1
    shifted = temporal_shift(x, num_frames, fold_div)[:, :, 0, 0]  # (T, C)
    fold = channels // fold_div
    fig = Figure(figsize=(2 + 0.55 * channels, 1.2 + 0.9 * num_frames))
    axes = fig.subplots(1, 2, sharey=True)
    panels = ((axes[0], values, "before"), (axes[1], shifted, f"after (fold = C // {fold_div} = {fold})"))
    for ax, data, title in panels:
        ax.imshow(data.numpy(), cmap="viridis", vmin=0, vmax=num_frames, aspect="auto")
        for t in range(num_frames):
            for c in range(channels):
                v = int(data[t, c])
                ax.text(c, t, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v < num_frames / 2 else "black")
        for edge in (fold, 2 * fold):
            ax.axvline(edge - 0.5, color="red", lw=1.5)
        ax.set_title(title)
        ax.set_xlabel("channel")
        ax.set_xticks(range(channels))
    axes[0].set_ylabel("frame t")
    axes[0].set_yticks(range(num_frames), [str(t + 1) for t in range(num_frames)])
    fig.suptitle(f"Temporal shift: channels [0, {fold}) come from frame t+1, [{fold}, {2 * fold}) from t-1, "
                 "the rest stay; 0 = zero padding", fontsize=10)
    fig.tight_layout()
    return fig


def branch_figure(frame_counts: Sequence[int] = (4, 8, 16), max_frames: int = 24) -> Figure:
    """The trained frame count whose branch an FFN uses for each T in 1..`max_frames`."""
    counts = sorted(frame_counts)
    ts = np.arange(1, max_frames + 1)
    branch = np.array([nearest_count(int(t), counts) for t in ts])
    fig = Figure(figsize=(8, 3))
    ax = fig.subplots()
    for count, colour in zip(counts, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")):
        mask = branch == count
        ax.bar(ts[mask], branch[mask], color=colour, label=f"{count}F branch")
    ax.scatter(counts, counts, color="black", zorder=3, marker="*", s=80, label="trained T")
    ax.set_xticks(ts)
    ax.set_yticks(counts)
    ax.set_xlabel("frames at inference (T)")
    ax.set_ylabel("branch used")
    ax.set_title("Nearest trained frame count, ties to the larger")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def parameter_figure(rows: Sequence[dict], title: str = "Parameters by part") -> Figure:
    """Bars of `ffnlib.models.parameter_table` rows: shared vs private, log scale, each bar's count
    at its end, inside the frame (the axis reaches far enough right for the longest label)."""
    fig = Figure(figsize=(7, 0.6 + 0.5 * len(rows)), layout="constrained")
    ax = fig.subplots()
    names = [f"{r['part']} ({r['sharing']}{', x' + str(r['copies']) if r['copies'] > 1 else ''})" for r in rows]
    colours = ["tab:gray" if r["sharing"] == "shared" else "tab:orange" for r in rows]
    totals = [r["total"] for r in rows]
    ax.barh(names, totals, color=colours)
    for y, total in enumerate(totals):
        ax.text(total, y, f" {total:,}", va="center", fontsize=8)
    ax.set_xscale("log")
    # room for the labels: the longest bar ends at about 70% of the width (log scale: in decades)
    low = 10 ** np.floor(np.log10(max(1, min(totals))) - 0.3)
    top = np.log10(max(totals))
    ax.set_xlim(low, 10 ** (np.log10(low) + (top - np.log10(low)) / 0.7))
    ax.invert_yaxis()
    ax.set_xlabel("parameters (log scale)")
    ax.set_title(title)
    return fig

"""Figures of Temporal Frequency Deviation (notebooks 05 and 08): each function returns a Figure.

    accuracy_vs_frames(table)          top-1 against the evaluation T, one line per model (mean ± std over seeds)
    accuracy_vs_gflops(table)          top-1 against the compute per clip (needs tfd.with_gmacs)
    per_class_tfd(per_class)           per class, top-1 lost from 16F to 4F: which classes collapse
    prediction_panel(models, source, index)   one video's frames at each T and each model's answer
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ffnlib.tfd import class_tfd, summarize

_RIGHT, _WRONG = "tab:green", "tab:red"
_STYLE = {"vanilla": ("C0", "o"), "st": ("C1", "s"), "proportional": ("C2", "^"), "mixed": ("C4", "v"),
          "ffn": ("C3", "D")}


def accuracy_vs_frames(table: pd.DataFrame, title: str = "accuracy vs evaluation frames",
                       label_column: str = "model_name", chance: float | None = None) -> Figure:
    """Top-1 against the evaluation T, one line per model (`label_column`), from a long TFD table.

    With a `seed` column holding several seeds, the line is the mean and the band one std.
    `chance` (percent), when given, is drawn as a dotted line.
    """
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, rows) in enumerate(table.groupby(label_column, sort=False)):
        stats = rows.groupby("eval_frames")["top1"].agg(["mean", "std", "count"]).reset_index()
        ax.plot(stats["eval_frames"], stats["mean"], marker="o", markersize=3, color=f"C{i}", label=str(name))
        if (stats["count"] > 1).any():
            ax.fill_between(stats["eval_frames"], stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=f"C{i}", alpha=0.2)
    if chance is not None:
        ax.axhline(chance, color="0.5", linestyle=":", linewidth=1, label=f"chance ({chance:.1f} %)")
    ax.set(xlabel="frames at evaluation (T)", ylabel="top-1 (%)", title=title, ylim=(0, 100))
    ax.set_xticks(sorted(table["eval_frames"].unique()))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _seeds_note(summary: pd.DataFrame) -> str:
    seeds = sorted(set(summary["seeds"]))
    if seeds == [1]:
        return "one seed"
    return f"mean ± std over {'/'.join(map(str, seeds))} seeds"


def accuracy_vs_gflops(table: pd.DataFrame, title: str = "accuracy vs compute per clip") -> Figure:
    """Top-1 against GMACs per clip (multiply-accumulates, what the paper calls GFLOPs), from a long
    table with a `gmacs` column (`ffnlib.tfd.with_gmacs`).

    Vanilla, FFN and the sampling baselines are curves over every evaluated T (points labelled with
    T on the first); each ST model is one square at its own T (the only T it is meant for). With
    several seeds: mean, and error bars of one std.
    """
    if "gmacs" not in table.columns:
        raise ValueError("accuracy_vs_gflops needs a gmacs column: pass tfd.with_gmacs(table)")
    summary = summarize(table)
    gmacs = table.assign(train_frames=table["train_frames"].astype(str)).groupby(
        ["model", "train_frames", "eval_frames"])["gmacs"].mean()
    summary["gmacs"] = [gmacs[k] for k in zip(summary["model"], summary["train_frames"], summary["eval_frames"])]
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    labelled = False
    for (model, train_frames), rows in summary.groupby(["model", "train_frames"], sort=False):
        colour, marker = _STYLE.get(model, ("0.3", "o"))
        if model == "st":
            rows = rows[rows["eval_frames"].astype(str) == train_frames]
            if rows.empty:
                continue
            ax.errorbar(rows["gmacs"], rows["top1_mean"], yerr=rows["top1_std"].fillna(0), fmt=marker, color=colour,
                        markersize=8, capsize=3, label=f"ST trained at {train_frames}F", zorder=3)
            continue
        ax.errorbar(rows["gmacs"], rows["top1_mean"], yerr=rows["top1_std"].fillna(0), marker=marker, color=colour,
                    markersize=4, capsize=2, label=f"{model} ({train_frames}F)")
        if not labelled:
            for x, y, t in zip(rows["gmacs"], rows["top1_mean"], rows["eval_frames"]):
                ax.annotate(f"{t}F", (x, y), xytext=(0, -11), textcoords="offset points", fontsize=7,
                            ha="center", color="0.35")
            labelled = True
    ax.set(xlabel="GMACs per clip (10⁹ multiply-accumulates; the paper's \"GFLOPs\")", ylabel="top-1 (%)",
           title=f"{title} ({_seeds_note(summary)})", ylim=(0, 100))
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _short(text: str, width: int = 42) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def per_class_tfd(per_class: pd.DataFrame, models: Sequence[str] = ("vanilla", "ffn"), high: int = 16,
                  low: int = 4, top: int = 20) -> Figure:
    """Per class, top-1 at `high` frames minus top-1 at `low` frames, one bar per model side by side,
    classes sorted by the first model's drop (largest, the classes that collapse, at the top).

    With more than 2 * `top` classes (SSv2: 174) only the `top` largest and the `top` smallest drops
    are drawn, with a gap between them. Models absent from `per_class` are skipped.
    """
    present = [m for m in models if (per_class["model"] == m).any()]
    if not present:
        raise ValueError(f"none of {list(models)} in the per-class results ({sorted(per_class['model'].unique())})")
    drops = {m: class_tfd(per_class, m, high, low).set_index("label") for m in present}
    first = drops[present[0]]
    order = list(first.index)
    shown = order if len(order) <= 2 * top else order[:top] + [None] + order[-top:]
    fig = Figure(figsize=(8.5, 0.26 * len(shown) * max(1, len(present) / 2) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / len(present)
    y = np.arange(len(shown))
    for i, model in enumerate(present):
        colour = _STYLE.get(model, (f"C{i}", None))[0]
        values = [drops[model]["drop"].get(label, np.nan) if label is not None else np.nan for label in shown]
        ax.barh(y - 0.4 + height * (i + 0.5), values, height=height, color=colour, label=model)
    names = [f"{label}: {_short(first.at[label, 'class_name'])}" if label is not None
             else f"… {len(order) - 2 * top} classes not shown …" for label in shown]
    ax.set_yticks(y, names, fontsize=7 if len(shown) > 20 else 8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel(f"top-1 at {high}F minus top-1 at {low}F (points; > 0: the class is worse at {low}F)")
    n = int(first["n"].median())
    seeds = int(first["seeds"].max())
    ax.set_title(f"per-class TFD, classes sorted by {present[0]}'s drop\n{len(order)} classes, median {n} videos "
                 f"per class" + (f", mean over {seeds} seeds" if seeds > 1 else ""), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


# ------------------------------------------------------------------------------------------ explorer
def video_options(source, limit: int = 500) -> list[tuple[str, int]]:
    """(label, index) pairs for a dropdown of the first `limit` videos of `source` (an SSv2 split)."""
    return [(f"{i}: {source.classes[label] if label >= 0 else '(no label)'} ({video_id})", i)
            for i, (video_id, label) in enumerate(source.samples[:limit])]


@torch.no_grad()
def predict_video(models: Mapping[str, tuple], source, index: int,
                  frame_counts: Sequence[int] = (4, 8, 16)) -> tuple[pd.DataFrame, dict]:
    """Each model's top prediction on video `index` of `source` at each T (test sampling, centre crop).

    `models` maps a name to (model, TrainConfig); each sees clips at its config's frame and resize
    size. Returns a table (model, eval_frames, prediction, class_name, confidence, true_prob, label,
    correct) and, per T, the frame indices and the clip (C, T, S, S) of the first model's size.
    """
    from ffnlib.datasets import MultiFrameClips, decode_sample

    if not models:
        raise ValueError("predict_video needs at least one model")
    frame_counts = tuple(int(t) for t in frame_counts)
    views, rows, shown = {}, [], {}
    for name, (model, config) in models.items():
        size = (config.frame_size, config.resize_size)
        if size not in views:
            view = MultiFrameClips(source, frame_counts=frame_counts, train=False, frame_size=size[0],
                                   resize_size=size[1])
            video = decode_sample(source, index)  # once, for the clips and for the frame indices shown
            clips, label = view.load(index, video=video)
            views[size] = (clips, label, view.draw(index, video).frame_idx)
        clips, label, frame_idx = views[size]
        if not shown:
            shown = {t: (idx, clip) for t, idx, clip in zip(frame_counts, frame_idx, clips)}
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        try:
            for t, clip in zip(frame_counts, clips):
                probs = model(clip[None].to(device)).float().softmax(dim=1)[0].cpu()  # (1, C, T, S, S) -> (classes,)
                pred = int(probs.argmax())
                rows.append({"model": name, "eval_frames": t, "prediction": pred,
                             "class_name": source.classes[pred], "confidence": float(probs[pred]),
                             "true_prob": float(probs[label]) if label >= 0 else float("nan"),
                             "label": label, "correct": pred == label})
        finally:
            model.train(was_training)
    return pd.DataFrame(rows), shown


def _time_strip(frames: np.ndarray, columns: int, gap: int) -> tuple[np.ndarray, list[float]]:
    """`frames` (T, S, S, 3) uint8 laid out on a white strip of `columns` slots, frame k in the slot
    where its segment centre lies in time; returns the strip (S, W, 3) and each frame's x centre."""
    t, size = frames.shape[0], frames.shape[1]
    strip = np.full((size, columns * (size + gap) - gap, 3), 255, dtype=np.uint8)  # (S, W, 3)
    centres = []
    for k in range(t):
        x0 = min(columns - 1, int((k + 0.5) * columns / t)) * (size + gap)
        strip[:, x0:x0 + size] = frames[k]
        centres.append(x0 + (size - 1) / 2)
    return strip, centres


def prediction_panel(models: Mapping[str, tuple], source, index: int,
                     frame_counts: Sequence[int] = (4, 8, 16)) -> Figure:
    """Video `index` of `source` at each T: its frames at the segment centres (as the network sees
    them, placed along the video's time axis, frame index above each) and each model's top prediction
    and confidence, green when right, red when wrong. `models` maps a name to (model, TrainConfig),
    e.g. vanilla and FFN."""
    from ffnlib.transforms import denormalize

    table, shown = predict_video(models, source, index, frame_counts)
    video_id, label = source.samples[index]
    frame_counts = list(shown)
    columns = max(frame_counts)
    fig = Figure(figsize=(13, 1.1 * len(frame_counts) + 0.6), layout="constrained")
    axes = fig.subplots(len(frame_counts), 2, squeeze=False, width_ratios=[0.66, 0.34])
    for (strip_ax, text_ax), t in zip(axes, frame_counts):
        frame_idx, clip = shown[t]
        strip, centres = _time_strip(denormalize(clip), columns, gap=max(1, clip.shape[-1] // 8))  # (T, S, S, 3)
        strip_ax.imshow(strip, interpolation="nearest")
        strip_ax.xaxis.tick_top()
        strip_ax.set_xticks(centres, [str(i) for i in frame_idx], fontsize=6)
        strip_ax.tick_params(axis="x", length=0, pad=1)
        strip_ax.set_yticks([])
        strip_ax.set_ylabel(f"T={t}", fontsize=10)
        for spine in strip_ax.spines.values():
            spine.set_visible(False)
        text_ax.set_axis_off()
        of_t = table[table["eval_frames"] == t].reset_index(drop=True)
        step = min(0.3, 0.9 / len(of_t))
        for i, row in of_t.iterrows():
            mark = "✓" if row["correct"] else "✗"
            text_ax.text(0.0, 0.5 + ((len(of_t) - 1) / 2 - i) * step,
                         f"{mark} {row['model']}: {_short(row['class_name'], 34)} ({row['confidence']:.0%})",
                         color=_RIGHT if row["correct"] else _WRONG, fontsize=8.5, va="center",
                         transform=text_ax.transAxes)
    truth = source.classes[label] if label >= 0 else "(no label)"
    fig.suptitle(f"video {video_id} (sample {index}): {truth}; frames at the test segment centres, "
                 f"frame index above each", fontsize=10)
    return fig

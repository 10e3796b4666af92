"""Figures of Temporal Frequency Deviation (notebooks 05 and 08): each function returns a Figure.

    accuracy_vs_frames(table)          top-1 against the evaluation T, one line per model (mean ± std over seeds)
    accuracy_vs_gflops(table)          top-1 against the compute per clip (needs tfd.with_gmacs)
    per_class_tfd(per_class)           per class, top-1 lost from 16F to 4F: which classes collapse
    prediction_panel(models, source, index)   one video's frames at each T and each model's answer

Every model keeps its colour and marker from one figure to the next (`ffnlib.plots.style`).
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ffnlib.display import video_options, video_title  # noqa: F401  (video_options: the explorer's dropdown)
from ffnlib.plots.frames import STRIP_SLOTS, time_strip, upscale
from ffnlib.plots.style import line_styles, style_for
from ffnlib.tfd import class_tfd, summarize

_RIGHT, _WRONG = "tab:green", "tab:red"
_NAME_WIDTH = 44  # class names wrap at this many characters (never cut) in the per-class figure
_ANSWER_WIDTH = 100  # and an answer of the explorer at this many


def _wrap(text: str, width: int = _NAME_WIDTH, indent: str = "", initial: str = "") -> str:
    return textwrap.fill(text, width, initial_indent=initial, subsequent_indent=indent, break_on_hyphens=False)


def _say_empty(ax, message: str) -> None:
    """Say in the axes why it holds no data, instead of leaving it blank."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.3",
            wrap=True, bbox=dict(facecolor="white", edgecolor="0.8", boxstyle="round"))


def accuracy_vs_frames(table: pd.DataFrame, title: str = "accuracy vs evaluation frames",
                       label_column: str = "model_name", chance: float | None = None) -> Figure:
    """Top-1 against the evaluation T, one line per model (`label_column`), from a long TFD table.

    With a `seed` column holding several seeds, the line is the mean and the band one std.
    `chance` (percent), when given, is drawn as a dotted line.
    """
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    groups = list(table.groupby(label_column, sort=False))
    # coloured by model (the `model` column where there is one): vanilla_16f in vanilla's colour
    styles = line_styles([name for name, _ in groups],
                         {name: rows["model"].iloc[0] for name, rows in groups} if "model" in table.columns else None)
    for name, rows in groups:
        style = styles[name]
        stats = rows.groupby("eval_frames")["top1"].agg(["mean", "std", "count"]).reset_index()
        ax.plot(stats["eval_frames"], stats["mean"], markersize=4, label=str(name), **style.line())
        if (stats["count"] > 1).any():
            ax.fill_between(stats["eval_frames"], stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=style.colour, alpha=0.2)
    if chance is not None:
        ax.axhline(chance, color="0.5", linestyle=":", linewidth=1, label=f"chance ({chance:.1f} %)")
    ax.set(xlabel="frames at evaluation (T)", ylabel="top-1 (%)", title=title, ylim=(0, 100))
    if table.empty:
        _say_empty(ax, "no evaluation results in the table")
    else:
        ax.set_xticks(sorted(table["eval_frames"].unique()))
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
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
    groups = list(summary.groupby(["model", "train_frames"], sort=False))
    styles = line_styles([key for key, _ in groups], {key: key[0] for key, _ in groups})
    for (model, train_frames), rows in groups:
        style = styles[(model, train_frames)]
        if model == "st":
            rows = rows[rows["eval_frames"].astype(str) == train_frames]
            if rows.empty:
                continue
            ax.errorbar(rows["gmacs"], rows["top1_mean"], yerr=rows["top1_std"].fillna(0), fmt=style.marker,
                        color=style.colour, markersize=8, capsize=3, label=f"ST trained at {train_frames}F", zorder=3)
            continue
        ax.errorbar(rows["gmacs"], rows["top1_mean"], yerr=rows["top1_std"].fillna(0), markersize=4, capsize=2,
                    label=f"{model} ({train_frames}F)", **style.line())
        if not labelled:
            for x, y, t in zip(rows["gmacs"], rows["top1_mean"], rows["eval_frames"]):
                ax.annotate(f"{t}F", (x, y), xytext=(0, -11), textcoords="offset points", fontsize=7,
                            ha="center", color="0.35")
            labelled = True
    ax.set(xlabel="GMACs per clip (10⁹ multiply-accumulates; the paper's \"GFLOPs\")", ylabel="top-1 (%)",
           title=f"{title} ({_seeds_note(summary)})", ylim=(0, 100))
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


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
    title = f"per-class TFD, classes sorted by {present[0]}'s drop"
    if not order:
        fig = Figure(figsize=(8.5, 2.5), layout="constrained")
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        _say_empty(ax, f"no class has validation videos at both {high}F and {low}F: nothing to compare")
        return fig
    shown = order if len(order) <= 2 * top else order[:top] + [None] + order[-top:]
    names = [f"{label}: {_wrap(first.at[label, 'class_name'], indent='    ')}" if label is not None
             else f"… {len(order) - 2 * top} classes not shown …" for label in shown]
    row = 0.26 * max(1, len(present) / 2) * (1.4 if any("\n" in n for n in names) else 1)
    fig = Figure(figsize=(8.5, row * len(shown) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / len(present)
    y = np.arange(len(shown))
    for i, model in enumerate(present):
        values = [drops[model]["drop"].get(label, np.nan) if label is not None else np.nan for label in shown]
        ax.barh(y - 0.4 + height * (i + 0.5), values, height=height, color=style_for(model).colour, label=model)
    ax.set_yticks(y, names, fontsize=7 if len(shown) > 20 else 8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel(f"top-1 at {high}F minus top-1 at {low}F (points; > 0: the class is worse at {low}F)")
    if all((drops[m]["drop"] == 0).all() for m in present):
        ax.set_xlim(-10, 10)
        _say_empty(ax, f"every drop is 0: each class scores the same at {low}F as at {high}F")
    n = int(first["n"].median())
    seeds = int(first["seeds"].max())
    ax.set_title(f"{title}\n{len(order)} classes, median {n} videos "
                 f"per class" + (f", mean over {seeds} seeds" if seeds > 1 else ""), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the bars
    return fig


# ------------------------------------------------------------------------------------------ explorer
@torch.no_grad()
def predict_video(models: Mapping[str, tuple], source, index: int,
                  frame_counts: Sequence[int] = (4, 8, 16)) -> tuple[pd.DataFrame, dict]:
    """Each model's top prediction on video `index` of `source` at each T (test sampling, centre crop).

    `models` maps a name to (model, TrainConfig); each sees clips at its config's frame and resize
    size. Returns a table (model, eval_frames, prediction, class_name, confidence, true_prob, label,
    correct) and, per T, the frame indices and the clip (C, T, S, S) of the first model's size.
    """
    from ffnlib.datasets import MultiFrameClips, decode_sample
    from ffnlib.train.data import model_input

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
                x = model_input(clip[None], device)  # (1, C, T, S, S) uint8 -> float32, as evaluation does
                probs = model(x).float().softmax(dim=1)[0].cpu()  # (1, C, T, S, S) -> (classes,)
                pred = int(probs.argmax())
                rows.append({"model": name, "eval_frames": t, "prediction": pred,
                             "class_name": source.classes[pred], "confidence": float(probs[pred]),
                             "true_prob": float(probs[label]) if label >= 0 else float("nan"),
                             "label": label, "correct": pred == label})
        finally:
            model.train(was_training)
    return pd.DataFrame(rows), shown


def prediction_panel(models: Mapping[str, tuple], source, index: int,
                     frame_counts: Sequence[int] = (4, 8, 16)) -> Figure:
    """Video `index` of `source` at each T: its frames at the segment centres as the network sees them
    (enlarged by whole pixels; placed along the video's time axis, eight places to a line; frame
    index above each), and below them each model's top prediction with its confidence and its class
    name whole (wrapped when longer than a line), green when right, red when wrong. The frames take
    the whole width, so that they stay large where JupyterLab shrinks the figure to its output area.
    `models` maps a name to (model, TrainConfig), e.g. vanilla and FFN. The title names the video as
    `ffnlib.display.video_title` (and the explorer's dropdown) does."""
    from ffnlib.transforms import denormalize

    table, shown = predict_video(models, source, index, frame_counts)
    frame_counts = list(shown)
    strips = {t: time_strip(upscale(denormalize(shown[t][1]))) for t in frame_counts}  # (T, S, S, 3) -> (H, W, 3)
    answers = {t: [(_wrap(f"{'✓' if row.correct else '✗'} {row.model}, {row.confidence:.0%}: {row.class_name}",
                          _ANSWER_WIDTH, indent="      "), _RIGHT if row.correct else _WRONG)
                   for row in table[table["eval_frames"] == t].itertuples()] for t in frame_counts}
    size, leading = 11, 1.3  # points, line spacing of the answers
    text_inches = {t: sum(text.count("\n") + 1 for text, _ in answers[t]) * size * leading / 72 + 0.08
                   for t in frame_counts}
    line_inches = 1.55  # one line of eight frames at 11 inches wide
    heights = [h for t in frame_counts for h in (line_inches * int(np.ceil(t / STRIP_SLOTS)), text_inches[t])]
    fig = Figure(figsize=(11, sum(heights) + 0.4 * len(frame_counts) + 0.6), layout="constrained")
    axes = fig.subplots(2 * len(frame_counts), 1, squeeze=False, height_ratios=heights)[:, 0]
    for strip_ax, text_ax, t in zip(axes[::2], axes[1::2], frame_counts):
        strip, anchors = strips[t]
        strip_ax.imshow(strip, interpolation="nearest")
        for (x, y), i in zip(anchors, shown[t][0]):
            strip_ax.text(x, y, str(i), ha="center", va="center", fontsize=9, color="0.2")
        strip_ax.set_xticks([])
        strip_ax.set_yticks([])
        strip_ax.set_ylabel(f"T={t}", fontsize=11, rotation=0, ha="right", va="center")
        for spine in strip_ax.spines.values():
            spine.set_visible(False)
        text_ax.set_axis_off()
        top = 0.0
        for text, colour in answers[t]:  # one under the other, from the top of the axes
            text_ax.annotate(text, (0, 1), xycoords="axes fraction", xytext=(0, top), textcoords="offset points",
                             va="top", ha="left", fontsize=size, color=colour, linespacing=leading)
            top -= (text.count("\n") + 1) * size * leading
    fig.suptitle(f"{video_title(source, index)}\nframes at the test segment centres, frame index above each; "
                 "below, each model's answer", fontsize=10)
    return fig

"""Figures of Temporal Frequency Deviation (notebooks 05 and 08): each function returns a Figure."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

MODEL_ORDER = ["vanilla", "st", "proportional", "mixed", "ffn"]


def accuracy_vs_frames(table: pd.DataFrame, title: str = "accuracy vs evaluation frames",
                       label_column: str = "run") -> Figure:
    """Top-1 against the evaluation T, one line per model (`label_column`), from a long TFD table.

    With a `seed` column holding several seeds, the line is the mean and the band one std.
    """
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, rows) in enumerate(table.groupby(label_column, sort=False)):
        stats = rows.groupby("eval_frames")["top1"].agg(["mean", "std", "count"]).reset_index()
        ax.plot(stats["eval_frames"], stats["mean"], marker="o", markersize=3, color=f"C{i}", label=str(name))
        if (stats["count"] > 1).any():
            ax.fill_between(stats["eval_frames"], stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=f"C{i}", alpha=0.2)
    ax.set(xlabel="frames at evaluation (T)", ylabel="top-1 (%)", title=title, ylim=(0, 100))
    ax.set_xticks(sorted(table["eval_frames"].unique()))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig

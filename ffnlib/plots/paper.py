"""The paper's figures beside ours (notebook 09): each function returns a Figure.

    any_frame(table)     Fig. 8: top-1 against the evaluation T of vanilla TSM, ST and FFN, measured
                         (left) and the paper's SSv1 curves (right), the same colour per model
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ffnlib import paper
from ffnlib.plots.style import style_for
from ffnlib.tables import paper_table

# the rows of the any-frame table drawn, and the model whose colour each takes
_CURVES = {"TSM trained at 16F": "vanilla", "ST (a model per T)": "st", "FFN": "ffn"}


def any_frame(table: pd.DataFrame, data: str | None = None, arch: str | None = None,
              title: str = "any-frame inference") -> Figure:
    """Top-1 against T for the rows of `ffnlib.paper.TABLES["anyframe"]`: measured on `table` (a
    `collect` table; `data` and `arch` pick the runs, None: any) on the left, mean and one std over
    seeds; the paper's SSv1 curves (TSM-R50) on the right. FFN's trained frame counts are marked."""
    cells = paper_table(table, "anyframe", data, arch)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ours, theirs = fig.subplots(1, 2, sharex=True)
    drawn = False
    for label, model in _CURVES.items():
        style = style_for(model)
        rows = cells[cells["row"] == label].sort_values("eval_frames")
        measured = rows[rows["seeds"] > 0]
        if len(measured):
            drawn = True
            ours.plot(measured["eval_frames"], measured["top1_mean"], label=label, markersize=4, **style.line())
            spread = measured["top1_std"].fillna(0)
            ours.fill_between(measured["eval_frames"], measured["top1_mean"] - spread, measured["top1_mean"] + spread,
                              color=style.colour, alpha=0.2)
        published = rows.dropna(subset=["paper"])
        theirs.plot(published["eval_frames"], published["paper"], label=label, markersize=4, **style.line())
    setting = ", ".join(x for x in (data, arch) if x) or "every run collected"
    ours.set(title=f"measured ({setting})", ylabel="top-1 (%)", ylim=(0, 100))
    theirs.set(title="paper: TSM-R50 on SSv1 (Fig. 8)", ylim=(0, 100))
    for ax in (ours, theirs):
        for t in (4, 8, 16):  # the frame counts FFN is trained on
            ax.axvline(t, color="0.85", linewidth=0.8, zorder=0)
        ax.set_xlabel("frames at evaluation (T)")
        ax.set_xticks(paper.TABLES["anyframe"].frames)
        ax.grid(alpha=0.3)
    theirs.legend(fontsize=8, loc="best")
    if drawn:
        ours.legend(fontsize=8, loc="best")
    else:
        ours.text(0.5, 0.5, "no vanilla, ST or FFN model in the runs collected", transform=ours.transAxes,
                  ha="center", va="center", color="0.3")
    fig.suptitle(title)
    return fig

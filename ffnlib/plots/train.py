"""Training curves from `metrics.jsonl` (notebooks 04 and 07): each function returns a Figure."""
from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.figure import Figure


def training_curves(histories: Mapping[str, Sequence[dict]]) -> Figure:
    """Train loss (and its parts), train top-1 and validation top-1 per evaluated T, per epoch.

    `histories`: model name -> the lines of its metrics.jsonl.
    """
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    ax_loss, ax_train, ax_val = fig.subplots(1, 3)
    for i, (name, history) in enumerate(histories.items()):
        if not history:
            continue
        colour = f"C{i}"
        epochs = [line["epoch"] for line in history]
        ax_loss.plot(epochs, [line["train_loss"] for line in history], color=colour, label=f"{name} loss")
        for key in sorted(k for k in history[0] if k.startswith("train_kl_") or k.startswith("train_ce_")):
            ax_loss.plot(epochs, [line[key] for line in history], color=colour, linestyle=":",
                         label=f"{name} {key.removeprefix('train_')}")
        ax_train.plot(epochs, [line["train_top1"] for line in history], color=colour, label=name)
        val_keys = sorted((k for k in history[0] if k.startswith("val_top1_")), key=lambda k: int(k.split("_")[-1]))
        styles = ["-", "--", "-.", ":"]
        for j, key in enumerate(val_keys):
            ax_val.plot(epochs, [line[key] for line in history], color=colour, linestyle=styles[j % len(styles)],
                        label=f"{name} {key.split('_')[-1]}F")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_train.set(xlabel="epoch", ylabel="top-1 (%)", title="training top-1", ylim=(0, 100))
    ax_val.set(xlabel="epoch", ylabel="top-1 (%)", title="validation top-1 per T", ylim=(0, 100))
    for ax in (ax_loss, ax_train, ax_val):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig

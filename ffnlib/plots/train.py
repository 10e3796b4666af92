"""Training curves from `metrics.jsonl` (notebooks 04 and 07): each function returns a Figure."""
from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.figure import Figure

from ffnlib.plots.style import line_styles

# The loss parts a recipe logs (`ffnlib.train.loop.logged_parts`): `train_ce` and `train_kl_<T>` (ffn),
# `train_ce_<T>` (mixed); vanilla and proportional log `train_ce` alone, the loss itself.
_PART_STYLES = (":", "--", "-.", (0, (1, 3)), (0, (5, 1)))
_VAL_STYLES = ("-", "--", "-.", ":")


def loss_parts(line: Mapping) -> list[str]:
    """The loss parts of a metrics line beside `train_loss`, when there are several (one part is the loss)."""
    parts = [k for k in line if k == "train_ce" or k.startswith(("train_ce_", "train_kl_"))]
    return parts if len(parts) > 1 else []


def training_curves(histories: Mapping[str, Sequence[dict]]) -> Figure:
    """Train loss (and its parts), train top-1 and validation top-1 per evaluated T, per epoch.

    `histories`: model folder name (vanilla_16f, ffn, ...) -> the lines of its metrics.jsonl. Each
    model has its colour (`ffnlib.plots.style`); line styles tell the loss parts and the T apart.
    Legends sit below the panels, off the curves; a model with no finished epoch is named in the title.
    """
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_loss, ax_train, ax_val = fig.subplots(1, 3)
    styles = line_styles(histories)
    for name, history in histories.items():
        if not history:
            continue
        style = styles[name]
        epochs = [line["epoch"] for line in history]
        few = dict(marker=style.marker, markersize=4) if len(epochs) <= 12 else {}
        ax_loss.plot(epochs, [line["train_loss"] for line in history], color=style.colour, label=f"{name} loss", **few)
        for key, dashes in zip(loss_parts(history[0]), _PART_STYLES):
            ax_loss.plot(epochs, [line.get(key, float("nan")) for line in history], color=style.colour,
                         linestyle=dashes, label=f"{name} {key.removeprefix('train_')}")
        ax_train.plot(epochs, [line["train_top1"] for line in history], color=style.colour, label=name, **few)
        val_keys = sorted((k for k in history[0] if k.startswith("val_top1_")), key=lambda k: int(k.split("_")[-1]))
        for key, dashes in zip(val_keys, _VAL_STYLES * len(val_keys)):
            ax_val.plot(epochs, [line.get(key, float("nan")) for line in history], color=style.colour,
                        linestyle=dashes, label=f"{name} {key.split('_')[-1]}F", **few)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss (dotted and dashed: its parts)")
    ax_train.set(xlabel="epoch", ylabel="top-1 (%)", title="training top-1", ylim=(0, 100))
    ax_val.set(xlabel="epoch", ylabel="top-1 (%)", title="validation top-1 per T", ylim=(0, 100))
    empty = [name for name, history in histories.items() if not history]
    if empty:
        fig.suptitle(f"no finished epoch yet: {', '.join(empty)}", fontsize=10, color="0.3")
    for ax in (ax_loss, ax_train, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)
    return fig

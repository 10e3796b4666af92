"""One colour, marker and line style per model, the same in every figure.

Keys are the TFD table's `model` names (`TrainConfig.model` and the baselines and ablations of
the paper). A model folder's name (`vanilla_16f`, `st_4f`, `ffn`, `ffn_no_sn_seed1`) maps to its
model with `model_of`: the name itself when it is a model, else the longest model name it starts
with followed by "_". A name that is no model gets a colour of its own from `UNKNOWN_COLOURS`,
picked from a checksum of the name, so it too keeps its colour from one figure to the next.

    style_for("vanilla_16f")    ModelStyle(colour="tab:blue", marker="o", linestyle="-")
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class ModelStyle:
    colour: str
    marker: str
    linestyle: str = "-"

    def line(self) -> dict:
        """Keyword arguments of `Axes.plot` / `Axes.errorbar` for this style."""
        return {"color": self.colour, "marker": self.marker, "linestyle": self.linestyle}


# The paper's models: solid lines. FFN's ablations (one part removed each): dashed, their own colours.
MODEL_STYLES: dict[str, ModelStyle] = {
    "vanilla": ModelStyle("tab:blue", "o"),
    "st": ModelStyle("tab:orange", "s"),
    "proportional": ModelStyle("tab:green", "^"),
    "mixed": ModelStyle("tab:purple", "v"),
    "finetune": ModelStyle("tab:brown", "P"),
    "ensemble": ModelStyle("tab:pink", "X"),
    "ffn": ModelStyle("tab:red", "D"),
    "ffn_no_sn": ModelStyle("tab:cyan", "<", "--"),  # shared BatchNorm instead of private ones
    "ffn_no_wa": ModelStyle("tab:olive", ">", "--"),  # no adaconv (weight alteration)
    "ffn_no_td": ModelStyle("goldenrod", "h", "--"),  # no temporal distillation (distill: false, CE on every branch)
    "ffn_no_ws": ModelStyle("tab:gray", "p", "--"),  # no weight sharing between the branches
}
UNKNOWN_COLOURS = ("#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666", "#1f78b4", "#b15928")
UNKNOWN_MARKER, UNKNOWN_LINESTYLE = "o", ":"
# Further lines of one model in one figure (st_4f and st_8f; several runs of one model) take these in turn.
VARIANT_LINESTYLES = ("-", "--", "-.", ":")


def model_of(name: str) -> str:
    """The model a name stands for: `name` when it is one of MODEL_STYLES, else the longest model
    name it starts with followed by "_" (vanilla_16f -> vanilla, st_4f -> st), else `name` itself."""
    name = str(name)
    if name in MODEL_STYLES:
        return name
    prefixes = [m for m in MODEL_STYLES if name.startswith(m + "_")]
    return max(prefixes, key=len) if prefixes else name


def style_for(name: str) -> ModelStyle:
    """The style of a model or model folder name (see `model_of`); an unknown name gets a colour
    from UNKNOWN_COLOURS by a checksum of the name (the same in every figure and session)."""
    model = model_of(name)
    if model in MODEL_STYLES:
        return MODEL_STYLES[model]
    colour = UNKNOWN_COLOURS[zlib.crc32(model.encode("utf-8")) % len(UNKNOWN_COLOURS)]
    return ModelStyle(colour, UNKNOWN_MARKER, UNKNOWN_LINESTYLE)


def line_styles(names, models: Mapping[str, str] | None = None) -> dict[str, ModelStyle]:
    """A style per name for one figure: each name its model's style (`models[name]` where given,
    else `model_of(name)`); a second, third... name of the same model (st_4f beside st_8f) keeps its
    colour and marker and takes the next of VARIANT_LINESTYLES."""
    seen: dict[str, int] = {}
    styles = {}
    for name in names:
        model = (models or {}).get(name, model_of(name))
        base = style_for(model)
        k = seen.get(model, 0)
        seen[model] = k + 1
        if k:
            others = [s for s in VARIANT_LINESTYLES if s != base.linestyle]
            base = ModelStyle(base.colour, base.marker, others[(k - 1) % len(others)])
        styles[name] = base
    return styles

import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from ffnlib.plots import tfd as tfd_plots  # noqa: E402
from ffnlib.plots import train as train_plots  # noqa: E402
from ffnlib.plots.style import (MODEL_STYLES, UNKNOWN_COLOURS, line_styles, model_of,  # noqa: E402
                                style_for)

MODELS = [("vanilla", "16", "vanilla_16f"), ("st", "4", "st_4f"), ("proportional", "4/16", "proportional"),
          ("mixed", "4/16", "mixed"), ("ffn", "4/8/16", "ffn"), ("ffn_no_sn", "4/8/16", "ffn_no_sn")]


@pytest.mark.parametrize("name, model", [("vanilla_16f", "vanilla"), ("st_4f", "st"), ("st_8f", "st"),
                                         ("ffn", "ffn"), ("ffn_no_sn", "ffn_no_sn"), ("ffn_no_sn_seed1", "ffn_no_sn"),
                                         ("ffn_lam0.5", "ffn"), ("mixed", "mixed"), ("tsn", "tsn"), ("stx", "stx")])
def test_model_of_maps_a_model_folder_to_its_model(name, model):
    assert model_of(name) == model


def test_every_model_has_its_own_colour_and_folders_share_their_models():
    colours = [to_hex(s.colour) for s in MODEL_STYLES.values()]
    assert len(set(colours)) == len(colours)
    assert style_for("vanilla_16f") == style_for("vanilla") and style_for("st_8f") == style_for("st_4f")
    assert all(style_for(m).linestyle == "--" for m in ("ffn_no_sn", "ffn_no_wa", "ffn_no_td", "ffn_no_ws"))


def test_an_unknown_name_keeps_its_colour_in_every_process():
    code = "from ffnlib.plots.style import style_for; print(style_for('tsn_8f').colour)"
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert seen == {style_for("tsn_8f").colour} and style_for("tsn_8f").colour in UNKNOWN_COLOURS
    assert style_for("tsn_8f").colour not in {s.colour for s in MODEL_STYLES.values()}


def test_line_styles_tell_two_folders_of_one_model_apart():
    styles = line_styles(["vanilla_16f", "st_4f", "st_8f", "ffn"])
    assert styles["st_4f"].colour == styles["st_8f"].colour == style_for("st").colour
    assert styles["st_4f"].linestyle != styles["st_8f"].linestyle
    assert line_styles(["a"], {"a": "ffn"})["a"] == style_for("ffn")  # an explicit model wins over the name


def _long_table() -> pd.DataFrame:
    rows = [{"model": m, "train_frames": tf, "model_name": run, "eval_frames": t, "top1": 50.0 + t, "top5": 90.0,
             "n": 10, "seed": 0, "gmacs": 0.1 * t} for m, tf, run in MODELS for t in (2, 4, 8, 16)]
    return pd.DataFrame(rows)


def _per_class() -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "seed": 0, "eval_frames": t, "label": c, "class_name": f"class {c}",
                          "top1": 100.0 - (c * 10 if t == 4 else 0), "n": 2}
                         for m in ("vanilla", "ffn") for c in range(3) for t in (4, 16)])


def _line_colours(fig) -> dict[str, str]:
    """label -> colour of every legend entry of a figure (lines, error bars and bars alike)."""
    found = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            artist = handle.lines[0] if hasattr(handle, "lines") else handle
            artist = artist[0] if isinstance(artist, tuple) else artist
            colour = artist.get_color() if hasattr(artist, "get_color") else artist.get_facecolor()
            found[label] = to_hex(colour)
    return found


def test_the_same_model_has_the_same_colour_in_every_figure():
    table = _long_table()
    histories = {run: [{"epoch": 1, "train_loss": 1.0, "train_ce": 1.0, "train_top1": 10.0, "val_top1_4": 20.0}]
                 for _, _, run in MODELS}
    figures = {
        "accuracy_vs_frames": (tfd_plots.accuracy_vs_frames(table), lambda label: label),
        "accuracy_vs_gflops": (tfd_plots.accuracy_vs_gflops(table),
                               lambda label: "st" if label.startswith("ST") else label.split(" (")[0]),
        "per_class_tfd": (tfd_plots.per_class_tfd(_per_class()), lambda label: label),
        "training_curves": (train_plots.training_curves(histories), lambda label: label.split(" ")[0]),
    }
    for name, (fig, model_in) in figures.items():
        colours = _line_colours(fig)
        assert colours, name
        for label, colour in colours.items():
            assert colour == to_hex(style_for(model_in(label)).colour), (name, label)
        models = {model_of(model_in(label)) for label in colours}
        assert {"vanilla", "ffn"} <= models, (name, models)

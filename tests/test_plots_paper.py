"""The paper's figures beside ours (ffnlib.plots.paper)."""
import pandas as pd

from ffnlib.plots.paper import any_frame


def long_rows(model, train_frames, values, seeds=(0,)):
    return [{"model": model, "train_frames": train_frames, "variant": "", "data": "builtin", "arch": "small",
             "eval_frames": t, "top1": v + s, "top5": 100.0, "n": 8, "seed": s} for s in seeds for t, v in values.items()]


def test_any_frame_draws_the_measured_curves_beside_the_papers():
    table = pd.DataFrame(long_rows("vanilla", "16", {2: 10.0, 4: 20.0, 16: 90.0}, seeds=(0, 1))
                         + long_rows("st", "4", {4: 70.0}) + long_rows("ffn", "4/8/16", {2: 50.0, 4: 80.0, 16: 91.0}))
    fig = any_frame(table, "builtin", "small")
    ours, theirs = fig.axes
    measured = {line.get_label(): line for line in ours.get_lines() if not line.get_label().startswith("_")}
    assert list(measured) == ["TSM trained at 16F", "ST (a model per T)", "FFN"]
    assert list(measured["TSM trained at 16F"].get_xdata()) == [2, 4, 16]
    assert list(measured["TSM trained at 16F"].get_ydata()) == [10.5, 20.5, 90.5]  # mean of two seeds
    assert list(measured["ST (a model per T)"].get_xdata()) == [4, 16]  # st_4f at 4F, the vanilla model at 16F
    published = {line.get_label(): line for line in theirs.get_lines() if not line.get_label().startswith("_")}
    assert list(published["FFN"].get_ydata()) == [42.85, 46.57, 48.20, 48.81, 48.90, 50.47, 50.79]
    empty = any_frame(table, "ssv1", "resnet50")  # no run on SSv1: the left panel says so
    assert "no vanilla, ST or FFN model" in empty.axes[0].texts[0].get_text()

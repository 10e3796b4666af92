import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (only to check that no pyplot figure is left open)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ffnlib import sampling  # noqa: E402
from ffnlib.datasets import SSv2  # noqa: E402
from ffnlib.models import create_model  # noqa: E402
from ffnlib.plots import tfd as tfd_plots  # noqa: E402
from ffnlib.train import TrainConfig  # noqa: E402

CONFIG = dict(arch="small", frame_size=32, resize_size=36)


def long(seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for model, train_frames, run, base in [("vanilla", "16", "vanilla_16f", 20), ("st", "4", "st_4f", 45),
                                               ("ffn", "4/8/16", "ffn", 50)]:
            for t in (2, 4, 8, 16):
                rows.append({"model": model, "train_frames": train_frames, "eval_frames": t, "top1": base + t + seed,
                             "top5": 90.0, "n": 20, "seed": seed, "model_name": run, "gmacs": 0.5 * t * (1.01 if model == "ffn" else 1)})
    return pd.DataFrame(rows)


def per_class(num_classes: int, seeds=(0,)) -> pd.DataFrame:
    """Vanilla loses `label` points per class from 16F to 4F, FFN half as much."""
    rows = []
    for seed in seeds:
        for model, factor in (("vanilla", 1.0), ("ffn", 0.5)):
            for label in range(num_classes):
                for t, top1 in ((16, 100.0), (4, 100.0 - factor * label * 100 / num_classes)):
                    rows.append({"model": model, "seed": seed, "eval_frames": t, "label": label,
                                 "class_name": f"class {label} " + "x" * 60, "top1": top1, "n": 3})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    yield
    assert plt.get_fignums() == []


def test_accuracy_vs_frames_one_line_per_model_with_chance():
    fig = tfd_plots.accuracy_vs_frames(long(), chance=12.5)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["vanilla_16f", "st_4f", "ffn", "chance (12.5 %)"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [22.5, 24.5, 28.5, 36.5])  # mean of 2 seeds
    empty = tfd_plots.accuracy_vs_frames(long().iloc[:0]).axes[0]
    assert [t.get_text() for t in empty.texts] == ["no evaluation results in the table"]


def test_accuracy_vs_gflops_curves_and_st_points():
    fig = tfd_plots.accuracy_vs_gflops(long())
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    assert labels == ["vanilla (16F)", "ST trained at 4F", "ffn (4/8/16F)"]
    st = handles[1].lines[0]
    assert st.get_xdata().tolist() == [2.0] and st.get_ydata().tolist() == [49.5]  # only at its own T
    assert "GMACs" in ax.get_xlabel() and "2 seeds" in ax.get_title()
    with pytest.raises(ValueError, match="with_gmacs"):
        tfd_plots.accuracy_vs_gflops(long().drop(columns="gmacs"))


def test_per_class_tfd_names_every_class_of_a_small_set():
    fig = tfd_plots.per_class_tfd(per_class(8, seeds=(0, 1)))
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) == 8 and ticks[0].startswith("7: class 7") and ticks[-1].startswith("0: class 0")
    assert len(ax.patches) == 16  # two models
    assert "2 seeds" in ax.get_title()
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # the constrained layout places the legend
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))  # beside the bars, never on them


def test_per_class_tfd_shows_the_top_and_bottom_of_ssv2():
    fig = tfd_plots.per_class_tfd(per_class(174), top=20)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(ticks) == 41 and ticks[20] == "… 134 classes not shown …"
    assert ticks[0].startswith("173: ") and ticks[-1].startswith("0: ")
    assert "".join(ticks[0].split()) == "173:class173" + "x" * 60  # wrapped, never cut
    with pytest.raises(ValueError, match="none of"):
        tfd_plots.per_class_tfd(per_class(8), models=("mixed",))


@pytest.fixture(scope="module")
def explorer(tiny_root):
    source = SSv2(tiny_root, "validation")
    torch.manual_seed(0)
    config = TrainConfig.from_dict(dict(CONFIG, data_root=str(tiny_root)))
    models = {"vanilla": (create_model("tsm_small", source.num_classes).eval(), config),
              "ffn": (create_model("ffn_small", source.num_classes, frame_counts=(4, 8, 16)).eval(),
                      config.replace(recipe="ffn"))}
    return models, source


def test_predict_video_answers_each_model_at_each_t(explorer):
    models, source = explorer
    table, shown = tfd_plots.predict_video(models, source, 3, (2, 8))
    label = source.samples[3][1]
    assert list(zip(table["model"], table["eval_frames"])) == [("vanilla", 2), ("vanilla", 8), ("ffn", 2), ("ffn", 8)]
    assert (table["correct"] == (table["prediction"] == label)).all() and (table["label"] == label).all()
    assert ((0 < table["confidence"]) & (table["confidence"] <= 1) & (table["true_prob"] <= table["confidence"])).all()
    num_video_frames = source.decode(3).num_frames
    assert shown[8][0].tolist() == sampling.centre_indices(num_video_frames, 8).tolist()  # segment centres
    assert tuple(shown[2][1].shape) == (3, 2, 32, 32)  # (C, T, S, S)
    again, _ = tfd_plots.predict_video(models, source, 3, (2, 8))
    pd.testing.assert_frame_equal(table, again)  # eval mode: no dropout, same answer


def _answers(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text()[:1] in ("✓", "✗")]


def test_prediction_panel_marks_each_answer_and_labels_each_frame(explorer):
    models, source = explorer
    fig = tfd_plots.prediction_panel(models, source, 0, (2, 4))
    assert len(_answers(fig)) == 4
    strips = [ax for ax in fig.axes if ax.images]
    assert len(strips) == 2
    image = strips[1].images[0].get_array()
    assert image.shape[0] >= 96 and image.shape[1] >= 8 * 96  # 32 px frames enlarged 3x, eight places a line
    num_video_frames = source.decode(0).num_frames
    frame_labels = [t.get_text() for t in strips[1].texts]
    assert frame_labels == [str(i) for i in sampling.centre_indices(num_video_frames, 4)]


def test_prediction_panel_shows_long_class_names_whole(explorer):
    import copy

    models, source = explorer
    renamed = copy.copy(source)  # two names that differ only in their last word, longer than a line
    renamed.classes = [f"Moving something down and then further down, slowly, without letting it fall or roll away, "
                       f"and at last to the {side} {i}"
                       for i, side in zip(range(source.num_classes), ["left", "right"] * source.num_classes)]
    fig = tfd_plots.prediction_panel(models, renamed, 1, (4, 16))
    table, _ = tfd_plots.predict_video(models, renamed, 1, (4, 16))
    answers = [" ".join(text.split()) for text in _answers(fig)]
    assert len(answers) == len(table) == 4
    for answer, name in zip(answers, table.sort_values("eval_frames", kind="stable")["class_name"]):
        assert answer.endswith(name)  # the whole name, wrapped over lines, never cut
    assert all("\n" in text for text in _answers(fig))  # longer than a line: wrapped


def test_explorer_title_numbers_the_video_as_its_dropdown(explorer):
    models, source = explorer
    options = tfd_plots.video_options(source, limit=5)
    assert [i for _, i in options] == [0, 1, 2, 3, 4]
    for label, index in options[2:4]:
        title = tfd_plots.prediction_panel(models, source, index, (4,))._suptitle.get_text()
        assert title.startswith(f"video {label}\n")  # "video 3: <class> (id <file id>)", as the dropdown says


def test_per_class_tfd_says_why_it_is_empty():
    rows = per_class(8)
    fig = tfd_plots.per_class_tfd(rows[rows["label"].isin([0]) | (rows["eval_frames"] == 16)]
                                  .assign(top1=lambda d: d["top1"].where(d["eval_frames"] == 16)))
    assert any("no class has validation videos at both 16F and 4F" in t.get_text() for t in fig.axes[0].texts)
    flat = per_class(8).assign(top1=50.0)
    fig = tfd_plots.per_class_tfd(flat)
    assert any("every drop is 0" in t.get_text() for t in fig.axes[0].texts)
    assert not any("every drop" in t.get_text() for t in tfd_plots.per_class_tfd(per_class(8)).axes[0].texts)

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

from ffnlib.plots.train import loss_parts, training_curves  # noqa: E402


def history(parts: dict, epochs: int = 3) -> list[dict]:
    return [{"epoch": e, "step": 3 * e, "train_loss": sum(parts.values()) / e, **{k: v / e for k, v in parts.items()},
             "train_top1": 10.0 * e, "val_top1_4": 12.5 * e, "val_top1_16": 15.0 * e} for e in range(1, epochs + 1)]


HISTORIES = {
    "vanilla_16f": history({"train_ce": 2.0}),
    "ffn": history({"train_ce": 2.0, "train_kl_4": 0.5, "train_kl_8": 0.2}),
    "mixed": history({"train_ce_4": 2.1, "train_ce_16": 2.0}),
}


def test_loss_parts_are_drawn_for_the_recipes_that_have_several():
    assert loss_parts(HISTORIES["vanilla_16f"][0]) == []  # its one part is the loss itself
    assert loss_parts(HISTORIES["ffn"][0]) == ["train_ce", "train_kl_4", "train_kl_8"]
    fig = training_curves(HISTORIES)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["vanilla_16f loss", "ffn loss", "ffn ce", "ffn kl_4", "ffn kl_8",
                      "mixed loss", "mixed ce_4", "mixed ce_16"]
    assert [line.get_label() for line in fig.axes[2].get_lines()][:2] == ["vanilla_16f 4F", "vanilla_16f 16F"]


def test_legends_sit_below_the_panels_off_the_curves():
    fig = training_curves(HISTORIES)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        frame = ax.get_window_extent(renderer)
        assert legend.y1 < frame.y0, ax.get_title()  # wholly below the plotting area
        assert legend.y0 >= 0  # and inside the figure


def test_a_model_with_no_finished_epoch_is_named():
    fig = training_curves({"ffn": HISTORIES["ffn"], "mixed": []})
    assert "no finished epoch yet: mixed" in fig._suptitle.get_text()
    assert all("mixed" not in line.get_label() for ax in fig.axes for line in ax.get_lines())

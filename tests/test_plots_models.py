import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

from ffnlib.models import create_model, parameter_table  # noqa: E402
from ffnlib.plots.models import branch_figure, parameter_figure, shift_figure  # noqa: E402


@pytest.mark.parametrize("rows", [
    [{"part": "conv", "sharing": "shared", "copies": 1, "total": 23_454_912},
     {"part": "norm", "sharing": "private", "copies": 3, "total": 159_360},
     {"part": "adaconv", "sharing": "private", "copies": 3, "total": 39_360}],
    "ffn_small",
])
def test_parameter_counts_stay_inside_the_frame(rows):
    if rows == "ffn_small":
        rows = parameter_table(create_model("ffn_small", num_classes=8))
    fig = parameter_figure(rows)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    frame = ax.get_window_extent(renderer)
    labels = [t for t in ax.texts if t.get_text().strip().replace(",", "").isdigit()]
    assert [int(t.get_text().replace(",", "")) for t in labels] == [r["total"] for r in rows]
    for text in labels:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, text.get_text()


def test_the_other_model_figures_still_draw():
    for fig in (shift_figure(4, 8, 4), branch_figure((4, 8, 16), 20)):
        FigureCanvasAgg(fig).draw()
        assert fig.axes

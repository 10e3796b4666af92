import ipywidgets as widgets
import pytest

from ffnlib import display
from ffnlib.datasets import SSv2
from ffnlib.train import TrainConfig


@pytest.fixture(scope="module")
def source(tiny_root):
    return SSv2(tiny_root, "validation")


def test_dropdown_and_title_number_a_video_alike(source):
    video_id, label = source.samples[3]
    assert display.video_label(source, 3) == f"3: {source.classes[label]} (id {video_id})"
    assert display.video_title(source, 3) == "video " + display.video_label(source, 3)
    options = display.video_options(source, limit=4, include=[0, 9])
    assert [i for _, i in options] == [0, 1, 2, 3, 9]
    assert all(text == display.video_label(source, i) for text, i in options)
    with pytest.raises(IndexError, match="videos 0..15"):
        display.video_options(source, limit=4, include=[16])


def test_explore_draws_once_headless_and_makes_no_widget(monkeypatch):
    def no_widget(*args, **kwargs):
        raise AssertionError("a widget was made in a headless run")

    monkeypatch.setattr(widgets, "Dropdown", no_widget)
    monkeypatch.setattr(widgets, "interactive", no_widget)
    calls = []
    drawn = display.explore(lambda video, t: calls.append((video, t)) or f"figure {video} {t}", False,
                            video=display.Choice([("a", 0), ("b", 1)], 1), t=display.Choice([4, 16], 16))
    assert drawn == "figure 1 16" and calls == [(1, 16)]
    with pytest.raises(ValueError, match="'t': value 8 is not one of its options"):
        display.explore(lambda t: t, False, t=display.Choice([4, 16], 8))


def test_explore_in_jupyterlab_is_one_widget_redrawn_on_change(source):
    calls = []
    view = display.explore(lambda video: calls.append(video), True, video=display.video_choice(source, 2, limit=5))
    assert isinstance(view, widgets.interactive) and calls == [2]  # its first drawing: the view's only one
    dropdown = view.children[0]
    assert dropdown.description == "video" and dropdown.label == display.video_label(source, 2)
    assert dropdown.layout.width == "max-content"  # wide enough for whole class names
    dropdown.value = 4
    assert calls == [2, 4]


def test_side_by_side_dashes_what_a_model_does_not_log():
    table = display.metrics_table({
        "ffn": [{"epoch": 1, "train_ce": 2.0}, {"epoch": 2, "train_ce": 1.234, "train_kl_4": 0.05}],
        "mixed": [{"epoch": 2, "train_ce_4": float("nan")}],
        "proportional": [],
    })
    assert list(table.columns) == ["ffn", "mixed", "proportional"]
    assert list(table.index) == ["epoch", "train_ce", "train_kl_4", "train_ce_4"]
    assert table.loc["epoch"].tolist() == ["2", "2", display.MISSING]
    assert table.loc["train_ce"].tolist() == ["1.23", display.MISSING, display.MISSING]
    assert table.loc["train_ce_4", "mixed"] == "nan"  # logged as NaN is not "not logged"
    assert "NaN" not in table.to_string() and "NaN" not in table.to_html()


def test_fill_missing_dashes_the_nan_cells():
    import pandas as pd

    table = display.fill_missing(pd.DataFrame({"4F": [12.34, float("nan")], "16F": [1, 2]}, index=["a", "b"]))
    assert table.loc["b", "4F"] == display.MISSING and table.loc["a", "4F"] == "12.3" and table.loc["a", "16F"] == "1"


def test_the_tfd_table_dashes_with_the_same_character():
    from ffnlib import tables

    assert tables.MISSING is display.MISSING  # one definition, imported


def test_config_summary_names_only_what_differs():
    base = TrainConfig(arch="small", epochs=30)
    config = base.replace(recipe="ffn", epochs=2)
    text = display.config_summary(config, base, "the demo profile")
    lines = text.splitlines()
    assert lines[0] == f"ffn: 2 of {len(config.to_dict())} settings differ from the demo profile:"
    assert "recipe" in lines[1] and "'ffn'" in lines[1] and "(the demo profile: 'vanilla')" in lines[1]
    assert "epochs" in lines[2] and "2" in lines[2] and "30" in lines[2]
    assert lines[-1] == "(every setting: print(config.to_yaml()))" and len(lines) == 4
    assert display.config_summary(base, base).startswith("vanilla_16f: all ")  # named by its model folder
    one = display.config_summary(base.replace(num_frames=4), base, "the profile", full_call="").splitlines()
    assert one[0] == f"st_4f: 1 of {len(config.to_dict())} settings differs from the profile:" and len(one) == 2
    assert display.config_diff({"a": 1}, {"a": 1, "b": 2}) == {"b": (2, display.MISSING)}


def test_name_list_is_short():
    assert display.name_list([f"p{i}" for i in range(31)], limit=3) == "p0, p1, p2 and 28 more (31 in all)"
    assert display.name_list(["a", "b"]) == "a, b" and display.name_list([]) == "none"

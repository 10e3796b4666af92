"""What the notebooks show besides figures, in one place.

    video_label(source, index)         "3: Moving something up (id 4)": a video as every dropdown and
    video_title(source, index)         figure title names it ("video 3: ..."): the sample index of the
                                       split first, the file's id after it
    explore(draw, interactive, ...)    a figure with controls in JupyterLab, the static figure headless
    side_by_side(records)              dicts side by side, "–" where one has no such key
    metrics_table(histories)           the last metrics.jsonl line of each model, side by side
    fill_missing(table)                a table with "–" for its NaN (the cells a model does not have)
    config_summary(config, baseline)   the settings that differ from a baseline, the full config one call away
    name_list(names)                   a few names and how many more, instead of a wall of them

Nothing here imports torch or ipywidgets at module level: headless runs never build a widget.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

MISSING = "–"  # a cell a model does not have (a loss part it does not log); the TFD table uses the same


# ------------------------------------------------------------------------------------------ videos
def class_name(source, label: int) -> str:
    """The class text of `label` in `source` (an SSv2 split); "(no label)" for the test split's -1."""
    return source.classes[label] if label >= 0 else "(no label)"


def video_label(source, index: int) -> str:
    """Video `index` of `source` as dropdowns list it: "<index>: <class> (id <video id>)". The index
    is the sample's position in the split (what `source[index]` and the notebooks' `video_index` take)."""
    video_id, label = source.samples[index]
    return f"{index}: {class_name(source, label)} (id {video_id})"


def video_title(source, index: int) -> str:
    """Video `index` of `source` as figure titles name it: "video " + `video_label`."""
    return f"video {video_label(source, index)}"


def video_options(source, limit: int = 500, include: Sequence[int] = ()) -> list[tuple[str, int]]:
    """(video_label, index) for the first `limit` videos of `source`, then each index of `include`
    beyond them (the video a notebook shows first), for a dropdown."""
    count = min(limit, len(source))
    extra = sorted({int(i) for i in include if not 0 <= int(i) < count})
    for i in extra:
        if not 0 <= i < len(source):
            raise IndexError(f"video {i}: the split has videos 0..{len(source) - 1}")
    return [(video_label(source, i), i) for i in [*range(count), *extra]]


# ------------------------------------------------------------------------------------------ explorer
@dataclass(frozen=True)
class Choice:
    """One control of `explore`: a dropdown of `options` (values, or (label, value) pairs) at `value`."""
    options: Sequence[Any]
    value: Any
    description: str = ""
    wide: bool = False  # as wide as its longest option (video names), not ipywidgets' default width

    def values(self) -> list:
        return [o[1] if isinstance(o, tuple) else o for o in self.options]


def video_choice(source, value: int = 0, limit: int = 500) -> Choice:
    """A `Choice` of the videos of `source` (`video_options`), starting at video `value`."""
    return Choice(video_options(source, limit, include=[value]), value, "video", wide=True)


def explore(draw: Callable[..., Any], interactive: bool, **controls: Choice):
    """One view of `draw(**values)` (a function returning a Figure), to leave as a cell's value.

    `interactive` (JupyterLab): a widget holding one dropdown per control and the figure, redrawn on
    every change; its first drawing is the view's only figure. Headless (`interactive=False`): the
    figure of the controls' values, and no widget is made (papermill hung on a widget cell, and a
    saved widget shows nothing where its state is not rendered).
    """
    for name, choice in controls.items():
        if not isinstance(choice, Choice):
            raise TypeError(f"explore: control {name!r} must be a display.Choice, got {type(choice).__name__}")
        if choice.value not in choice.values():
            raise ValueError(f"explore: control {name!r}: value {choice.value!r} is not one of its options")
    if not interactive:
        return draw(**{name: choice.value for name, choice in controls.items()})
    import ipywidgets as widgets

    dropdowns = {}
    for name, choice in controls.items():
        layout = widgets.Layout(width="max-content", max_width="100%") if choice.wide else widgets.Layout()
        dropdowns[name] = widgets.Dropdown(options=list(choice.options), value=choice.value,
                                           description=choice.description or name, layout=layout,
                                           style={"description_width": "initial"})
    return widgets.interactive(draw, {"auto_display": True}, **dropdowns)


# ------------------------------------------------------------------------------------------ tables
def _cell(value, digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"  # logged as NaN: not the same as not logged
    return f"{value:.{digits}f}"


def side_by_side(records: Mapping[str, Mapping[str, Any]], digits: int = 2) -> pd.DataFrame:
    """One column per record (e.g. per model), one row per key in the order first met; each value
    formatted (floats to `digits` decimals), MISSING where a record has no such key. A value that is
    there and NaN shows as "nan"."""
    keys: dict[str, None] = {}
    for record in records.values():
        keys.update(dict.fromkeys(record))
    table = pd.DataFrame({name: [_cell(record[k], digits) if k in record else MISSING for k in keys]
                          for name, record in records.items()}, index=list(keys), dtype=object)
    table.index.name = "metric"
    return table


def metrics_table(histories: Mapping[str, Sequence[Mapping[str, Any]]], digits: int = 2) -> pd.DataFrame:
    """The last line of each model's metrics.jsonl (`histories`: name -> lines), one column per
    model: MISSING for what a recipe does not log (`train_ce` of mixed, `train_kl_4` of all but FFN)
    and a whole column of it for a model with no finished epoch."""
    return side_by_side({name: (lines[-1] if lines else {}) for name, lines in histories.items()}, digits)


def fill_missing(table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """`table` with its numbers formatted to `digits` decimals and MISSING in its NaN cells, for a
    table whose NaN means "this model has no such value" (not a NaN that was measured)."""
    def cell(value):
        if isinstance(value, numbers.Number) and not isinstance(value, bool) and math.isnan(float(value)):
            return MISSING
        return _cell(value, digits)

    return table.apply(lambda column: column.map(cell)).astype(object)


# ------------------------------------------------------------------------------------------ configs
def _as_dict(config) -> dict:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise TypeError(f"expected a config with to_dict() or a mapping, got {type(config).__name__}")


def config_diff(config, baseline) -> dict[str, tuple[Any, Any]]:
    """key -> (baseline's value, config's value) for every key whose values differ, in the config's
    order; MISSING on the side that lacks the key. Configs are TrainConfig-like (`to_dict()`) or dicts."""
    new, old = _as_dict(config), _as_dict(baseline)
    return {k: (old.get(k, MISSING), new.get(k, MISSING)) for k in [*new, *(k for k in old if k not in new)]
            if k not in new or k not in old or new[k] != old[k]}


def config_summary(config, baseline, baseline_name: str = "the defaults", name: str | None = None,
                   full_call: str = "print(config.to_yaml())") -> str:
    """A few lines instead of the whole config: how many settings `config` has, which differ from
    `baseline` (e.g. the profile's config) and how; the last line names the call that prints it all
    (left out when `full_call` is empty: several summaries, then that line once)."""
    diff = config_diff(config, baseline)
    total = len(_as_dict(config))
    name = name or getattr(config, "model_name", "config")
    if not diff:
        head = f"{name}: all {total} settings as {baseline_name}"
        lines = []
    else:
        verb = "differs" if len(diff) == 1 else "differ"
        head = f"{name}: {len(diff)} of {total} settings {verb} from {baseline_name}:"
        width = max(len(k) for k in diff)
        lines = [f"  {k:<{width}}  {new!r}  ({baseline_name}: {old!r})".replace(f"'{MISSING}'", MISSING)
                 for k, (old, new) in diff.items()]
    return "\n".join([head, *lines, *([f"(every setting: {full_call})"] if full_call else [])])


def name_list(names: Sequence[str], limit: int = 6) -> str:
    """The first `limit` names, and how many more: "a, b, c and 28 more (31 in all)"; "none" if empty."""
    names = [str(n) for n in names]
    if not names:
        return "none"
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more ({len(names)} in all)"

"""Something-Something V2 as distributed: JSON annotations and one WebM per video.

    <data_root>/something-something-v2-labels.json       {"<class text>": "<index as a string>", ...}
    <data_root>/something-something-v2-train.json        [{"id", "label", "template", "placeholders"}, ...]
    <data_root>/something-something-v2-validation.json   same fields
    <data_root>/something-something-v2-test.json         [{"id"}, ...] (no labels: label -1)
    <video_dir>/<id>.webm

A sample's class is `labels[template with every "[" and "]" removed]`. This module owns the layout:
the file names, the reader (`SSv2`) and the writer of the annotation files (`write_annotations`, used
by the built-in data and the benchmarks' clips).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ffnlib.paths import write_text_atomic

from .base import DatasetError, NO_LABEL, Split, closest_hint, missing_file

LABELS_FILE = "something-something-v2-labels.json"
SPLIT_FILES = {
    "train": "something-something-v2-train.json",
    "validation": "something-something-v2-validation.json",
    "test": "something-something-v2-test.json",
}
VIDEO_SUFFIX = ".webm"


def template_to_class(template: str) -> str:
    """The class text of a template: "Putting [something] on [something]" -> "Putting something on something"."""
    return template.replace("[", "").replace("]", "")


def _read_json(path: Path):
    if not path.is_file():
        raise missing_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(path, f"malformed JSON ({e})") from e


def read_labels(path: str | Path) -> list[str]:
    """Class names in index order, from a labels file mapping class text to its index (a string)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise DatasetError(path, f"expected a non-empty object {{class text: index}}, got {type(data).__name__}")
    by_index: dict[int, str] = {}
    for name, value in data.items():
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise DatasetError(path, f"class {name!r}: expected an index such as \"12\", got {value!r}")
        index = int(value)
        if index in by_index:
            raise DatasetError(path, f"index {index} is given to both {by_index[index]!r} and {name!r}")
        by_index[index] = name
    if sorted(by_index) != list(range(len(by_index))):
        missing = sorted(set(range(len(by_index))) - set(by_index))
        raise DatasetError(path, f"class indices must be 0..{len(by_index) - 1}; missing {missing[:5]}")
    return [by_index[i] for i in range(len(by_index))]


def read_split(path: str | Path, class_to_idx: dict[str, int], labelled: bool = True) -> list[tuple[str, int]]:
    """(video_id, label) for every entry of a split file; `labelled=False` (the test split) gives -1."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise DatasetError(path, f"expected a list of entries {{id, template, ...}}, got {type(data).__name__}")
    samples: list[tuple[str, int]] = []
    seen: set[str] = set()
    for position, entry in enumerate(data):
        if not isinstance(entry, dict) or "id" not in entry:
            raise DatasetError(path, f"entry {position}: expected an object with an \"id\", got {entry!r:.80}")
        video_id = str(entry["id"])
        if video_id in seen:
            raise DatasetError(path, f"video id {video_id} appears more than once")
        seen.add(video_id)
        if not labelled:
            samples.append((video_id, NO_LABEL))
            continue
        template = entry.get("template")
        if not isinstance(template, str):
            raise DatasetError(path, f"video id {video_id} (entry {position}): no \"template\" text")
        name = template_to_class(template)
        if name not in class_to_idx:
            hint = closest_hint(name, class_to_idx)
            raise DatasetError(path, f"video id {video_id}: template {template!r} is no class of the labels file{hint}")
        samples.append((video_id, class_to_idx[name]))
    return samples


class SSv2(Split):
    """One split of Something-Something V2 (or anything in its layout): classes, samples, video paths.

    `root` holds the JSON files; videos are `<video_dir or root>/<id>.webm`. `samples` is a list of
    (video_id, label) in file order; `classes[label]` is the class text.
    """

    layout = "ssv2"

    def __init__(self, root: str | Path, split: str = "train", video_dir: str | Path | None = None):
        if split not in SPLIT_FILES:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_FILES)}")
        root = Path(root)
        super().__init__(root, split, Path(video_dir) if video_dir else root, root / SPLIT_FILES[split])
        self.classes = read_labels(self.root / LABELS_FILE)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = read_split(self.annotation_file, self.class_to_idx, labelled=split != "test")
        self._loaded()

    def video_path(self, video_id: str) -> Path:
        return self.video_dir / f"{video_id}{VIDEO_SUFFIX}"

    def media_path(self, index: int) -> Path:
        return self.video_path(self.samples[index][0])


def write_annotations(root: str | Path, templates: Sequence[str], splits: dict[str, list[dict]]) -> None:
    """Write the labels file for the class `templates` (index = position) and one JSON file per split.

    `splits[name]` lists entries {"id", "label", "template", "placeholders"} ({"id"} alone for the test
    split), written as given; each file is written whole or not at all.
    """
    root = Path(root)
    unknown = sorted(set(splits) - set(SPLIT_FILES))
    if unknown:
        raise ValueError(f"unknown SSv2 split(s) {unknown}: expected some of {sorted(SPLIT_FILES)}")
    root.mkdir(parents=True, exist_ok=True)
    labels = {template_to_class(t): str(i) for i, t in enumerate(templates)}
    write_text_atomic(root / LABELS_FILE, json.dumps(labels, indent=1))
    for name, entries in splits.items():
        write_text_atomic(root / SPLIT_FILES[name], json.dumps(entries, indent=1))

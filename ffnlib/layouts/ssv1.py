"""Something-Something V1 as distributed: CSV annotations and one folder of JPEG frames per video.

    <data_root>/something-something-v1-labels.csv       one class text per line; index = 0-based line number
    <data_root>/something-something-v1-train.csv        <id>;<class text>   (86,017 videos)
    <data_root>/something-something-v1-validation.csv   <id>;<class text>   (11,522 videos)
    <data_root>/something-something-v1-test.csv         <id>                (no labels: label -1)
    <video_dir>/<id>/00001.jpg, 00002.jpg, ...          frames, 1-based, 5 digits (100 px high)

`video_dir` defaults to `<data_root>/20bn-something-something-v1`, the folder the frame archive
unpacks to. 174 classes; class texts may hold commas (hence the semicolons). This module owns the
layout: file names, the reader (`SSv1`) and the annotation writer (`write_annotations`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ffnlib.frames import check_template
from ffnlib.paths import write_text_atomic

from .base import DatasetError, FrameSplit, NO_LABEL, check_unique, closest_hint, read_lines

LABELS_FILE = "something-something-v1-labels.csv"
SPLIT_FILES = {
    "train": "something-something-v1-train.csv",
    "validation": "something-something-v1-validation.csv",
    "test": "something-something-v1-test.csv",
}
FRAMES_DIR = "20bn-something-something-v1"
FRAME_TEMPLATE = "{:05d}.jpg"


def read_labels(path: str | Path) -> list[str]:
    """Class texts in index order: line k of the labels file is class k."""
    path = Path(path)
    lines = read_lines(path)
    classes = [text.strip() for _, text in lines]
    if not classes:
        raise DatasetError(path, "expected one class text per line, the file is empty")
    seen: dict[str, int] = {}
    for (line, _), name in zip(lines, classes):
        if name in seen:
            raise DatasetError(path, f"class {name!r} is listed twice (first on line {seen[name]})", line)
        seen[name] = line
    return classes


def read_split(path: str | Path, class_to_idx: dict[str, int], labelled: bool = True) -> list[tuple[str, int]]:
    """(video_id, label) per line `<id>;<class text>` (`<id>` alone when not `labelled`)."""
    path = Path(path)
    samples, lines = [], []
    for line, text in read_lines(path):
        video_id, sep, name = text.partition(";")
        video_id, name = video_id.strip(), name.strip()
        if not video_id or (labelled and (not sep or not name)):
            want = "<id>;<class text>" if labelled else "<id>"
            raise DatasetError(path, f"expected {want}, got {text!r:.80}", line)
        if not labelled:
            samples.append((video_id, NO_LABEL))
        elif name not in class_to_idx:
            hint = closest_hint(name, class_to_idx)
            raise DatasetError(path, f"video {video_id}: class {name!r} is not in the labels file{hint}", line)
        else:
            samples.append((video_id, class_to_idx[name]))
        lines.append(line)
    check_unique(path, samples, lines)
    return samples


class SSv1(FrameSplit):
    """One split of Something-Something V1: `samples` (id, label) in file order, frames `<video_dir>/<id>/`."""

    layout = "ssv1"

    def __init__(self, root: str | Path, split: str = "train", video_dir: str | Path | None = None,
                 frame_template: str = ""):
        if split not in SPLIT_FILES:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_FILES)}")
        root = Path(root)
        super().__init__(root, split, Path(video_dir) if video_dir else root / FRAMES_DIR, root / SPLIT_FILES[split],
                         check_template(frame_template or FRAME_TEMPLATE))
        self.classes = read_labels(root / LABELS_FILE)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = read_split(self.annotation_file, self.class_to_idx, labelled=split != "test")
        self._loaded()


def write_annotations(root: str | Path, classes: Sequence[str], splits: dict[str, list[tuple[str, int]]]) -> None:
    """Write the labels file (`classes` in index order) and, per split, `<id>;<class text>` lines for
    its (video_id, label) pairs (`<id>` alone for the test split)."""
    root = Path(root)
    unknown = sorted(set(splits) - set(SPLIT_FILES))
    if unknown:
        raise ValueError(f"unknown SSv1 split(s) {unknown}: expected some of {sorted(SPLIT_FILES)}")
    if any(";" in name or "\n" in name for name in classes):
        raise ValueError("SSv1 class texts cannot hold ';' or a line break")
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / LABELS_FILE, "".join(f"{name}\n" for name in classes))
    for name, samples in splits.items():
        lines = (f"{vid}\n" if name == "test" else f"{vid};{classes[label]}\n" for vid, label in samples)
        write_text_atomic(root / SPLIT_FILES[name], "".join(lines))

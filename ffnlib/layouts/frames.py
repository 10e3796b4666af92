"""Frame dumps with the official TSM list files (`<folder> <num_frames> <label>` per line).

    <data_root>/<list file>          e.g. train_videofolder.txt: `<folder> <num_frames> <label>` per line
    <data_root>/category.txt         optional: class names, one per line (index = line), as TSM writes it
    <video_dir>/<folder>/<frame>     frames frame_template.format(k), k = 1..num_frames

`split` is the list file's name relative to `data_root`. TSM extracts SSv2 as `{:06d}.jpg`, SSv1 as
`{:05d}.jpg`, Kinetics as `img_{:05d}.jpg` (its default, and this layout's when `frame_template` is
empty). Classes: the lines of `category.txt` when it is there, else "0".."K-1" with K one more than the
largest label of the list. `video_dir` defaults to `data_root`. This module owns the layout: the
reader (`FrameList`) and the writer of list files (`write_list`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ffnlib.frames import check_template
from ffnlib.paths import write_text_atomic

from .base import DatasetError, FrameSplit, check_unique, read_lines

CATEGORY_FILE = "category.txt"
FRAME_TEMPLATE = "img_{:05d}.jpg"


def _integer(path: Path, line: int, what: str, text: str, minimum: int) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise DatasetError(path, f"{what} must be an integer >= {minimum}, got {text!r}", line)
    return int(text)


def read_list(path: str | Path) -> list[tuple[str, int, int, int]]:
    """(folder, num_frames, label, line number) per line `<folder> <num_frames> <label>`."""
    path = Path(path)
    rows = []
    for line, text in read_lines(path):
        parts = text.split()
        if len(parts) != 3:
            raise DatasetError(path, f"expected `<folder> <num_frames> <label>`, got {text!r:.80}", line)
        folder, num_frames, label = parts
        rows.append((folder, _integer(path, line, "num_frames", num_frames, 1),
                     _integer(path, line, "label", label, 0), line))
    if not rows:
        raise DatasetError(path, "the list file holds no video")
    return rows


class FrameList(FrameSplit):
    """The videos of one TSM list file: `samples` (folder, label), frames `<video_dir>/<folder>/`."""

    layout = "frames"

    def __init__(self, root: str | Path, split: str, video_dir: str | Path | None = None, frame_template: str = ""):
        root = Path(root)
        super().__init__(root, split, Path(video_dir) if video_dir else root, root / split,
                         check_template(frame_template or FRAME_TEMPLATE))
        rows = read_list(self.annotation_file)
        self.samples = [(folder, label) for folder, _, label, _ in rows]
        self.num_video_frames = [num_frames for _, num_frames, _, _ in rows]
        check_unique(self.annotation_file, self.samples, [line for *_, line in rows])
        categories = root / CATEGORY_FILE
        if categories.exists():
            self.classes = [name.strip() for _, name in read_lines(categories)]
            for folder, _, label, line in rows:
                if label >= len(self.classes):
                    raise DatasetError(self.annotation_file, f"video {folder}: label {label} is not a class of "
                                       f"{categories} ({len(self.classes)} classes)", line)
        else:
            self.classes = [str(k) for k in range(max(label for _, label in self.samples) + 1)]
        self._loaded()


def write_list(path: str | Path, rows: Sequence[tuple[str, int, int]], classes: Sequence[str] | None = None) -> None:
    """Write a TSM list file of (folder, num_frames, label) rows, and `category.txt` beside it when
    `classes` are given."""
    path = Path(path)
    if any(len(folder.split()) != 1 for folder, _, _ in rows):
        raise ValueError("TSM list files cannot hold folder names with spaces")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(f"{folder} {n} {label}\n" for folder, n, label in rows))
    if classes is not None:
        write_text_atomic(path.parent / CATEGORY_FILE, "".join(f"{name}\n" for name in classes))

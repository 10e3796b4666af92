"""HMDB51 as distributed: class folders of .avi clips and the official three-fold split files.

    <data_root>/<class>_test_split<fold>.txt     `<video>.avi <0|1|2>` per line: 1 train, 2 test, 0 unused
    <video_dir>/<class>/<video>.avi               the clips (the RAR archives unpacked)

`split` is "train" or "test", `fold` 1, 2 or 3 (the paper's splits). Classes are the class names of
the split files, sorted. A sample's `video_id` is its file name. `video_dir` defaults to `data_root`.
This module owns the layout: the reader (`HMDB51`) and the split-file writer (`write_split_files`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ffnlib.paths import write_text_atomic

from .base import DatasetError, Split, check_unique, read_lines

SPLITS = {"train": "1", "test": "2"}
FOLDS = (1, 2, 3)


def split_file_name(class_name: str, fold: int) -> str:
    return f"{class_name}_test_split{fold}.txt"


class HMDB51(Split):
    """One split of one HMDB51 fold: `samples` (file name, label), clips `<video_dir>/<class>/<file>`."""

    layout = "hmdb51"

    def __init__(self, root: str | Path, split: str = "train", video_dir: str | Path | None = None, fold: int = 1):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: HMDB51 has {sorted(SPLITS)}")
        if fold not in FOLDS:
            raise ValueError(f"fold must be one of {FOLDS} (HMDB51's official splits), got {fold!r}")
        root = Path(root)
        files = sorted(root.glob(split_file_name("*", fold))) if root.is_dir() else []
        pattern = re.compile(rf"(.+)_test_split{fold}\.txt\Z")
        super().__init__(root, split, Path(video_dir) if video_dir else root,
                         root / split_file_name("<class>", fold))
        if not files:
            where = "" if root.is_dir() else " (the folder does not exist)"
            raise DatasetError(root / split_file_name("<class>", fold), f"no split file of fold {fold} in {root}{where}")
        self.fold = fold
        self.classes = [pattern.match(f.name).group(1) for f in files]
        self._folders: list[str] = []
        for label, path in enumerate(files):
            samples, lines = [], []
            for line, text in read_lines(path):
                parts = text.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise DatasetError(path, f"expected `<video>.avi <0|1|2>`, got {text!r:.80}", line)
                if parts[1] == SPLITS[split]:
                    samples.append((parts[0], label))
                    lines.append(line)
            check_unique(path, samples, lines)
            self.samples += samples
            self._folders += [self.classes[label]] * len(samples)
        self._loaded()

    def media_path(self, index: int) -> Path:
        return self.video_dir / self._folders[index] / self.samples[index][0]


def write_split_files(root: str | Path, classes: Sequence[str], assignment: dict[str, list[tuple[str, int]]],
                      fold: int = 1) -> None:
    """Write `<class>_test_split<fold>.txt` for every class: `assignment[class]` lists (video file,
    0|1|2) in file order."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in classes:
        lines = "".join(f"{video} {code} \n" for video, code in assignment.get(name, []))
        write_text_atomic(root / split_file_name(name, fold), lines)

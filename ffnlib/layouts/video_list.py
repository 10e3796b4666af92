"""A user's own videos: a CSV of `path,label` rows, one video file per row (any container PyAV opens).

    <data_root>/<split>        the CSV, e.g. train.csv: header `path,label`, then one row per video
    <video_dir>/<path>         the video (paths relative to `video_dir`, which defaults to `data_root`)

Labels are integer class indices; the classes are "0".."K-1", K one more than the largest label of the
file. A sample's `video_id` is its path as written. This module owns the layout: the reader
(`VideoList`) and the writer (`write_list`).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from ffnlib.paths import write_text_atomic

from .base import DatasetError, Split, check_unique, read_text

HEADER = ("path", "label")


class VideoList(Split):
    """The videos of one `path,label` CSV: `samples` (path, label) in file order."""

    layout = "video_list"

    def __init__(self, root: str | Path, split: str, video_dir: str | Path | None = None):
        root = Path(root)
        super().__init__(root, split, Path(video_dir) if video_dir else root, root / split)
        path = self.annotation_file
        reader = csv.reader(io.StringIO(read_text(path)))
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise DatasetError(path, f"expected the header `path,label`, got {','.join(header or [])!r}", 1)
        samples, lines = [], []
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            line = reader.line_num
            if len(row) != 2 or not row[0].strip():
                raise DatasetError(path, f"expected `path,label`, got {','.join(row)!r:.80}", line)
            label = row[1].strip()
            if not label.isdigit():
                raise DatasetError(path, f"label must be an integer class index >= 0, got {label!r}", line)
            samples.append((row[0].strip(), int(label)))
            lines.append(line)
        if not samples:
            raise DatasetError(path, "the list holds no video")
        check_unique(path, samples, lines)
        self.samples = samples
        self.classes = [str(k) for k in range(max(label for _, label in samples) + 1)]
        self._loaded()

    def media_path(self, index: int) -> Path:
        return self.video_dir / self.samples[index][0]


def write_list(path: str | Path, rows: Sequence[tuple[str, int]]) -> None:
    """Write a `path,label` CSV of (path relative to the video folder, label) rows."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((p, int(label)) for p, label in rows)
    write_text_atomic(Path(path), out.getvalue())

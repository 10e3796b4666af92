"""Kinetics (400, 600, 700) as distributed: the official CSV files and one mp4 clip per row.

    <data_root>/<split>.csv     label,youtube_id,time_start,time_end,split[,is_cc]  (train.csv, validate.csv)
    <video_dir>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4      clips in one folder, or
    <video_dir>/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4   in one folder per class

Classes are the labels of `train.csv` (of the split's own CSV when there is no train.csv), sorted by
name. A sample's `video_id` is its clip's name without `.mp4`. Many YouTube videos are gone, so every
copy of Kinetics misses some clips: the reader looks for every clip up front and refuses a split with
missing clips, saying how many and which, unless `skip_missing_videos=True`, which leaves them out
(listed in `missing`). This module owns the layout: the reader (`Kinetics`), `clip_name` and the CSV
writer (`write_csv`).
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Sequence

from ffnlib.paths import write_text_atomic

from .base import DatasetError, Split, VideoProblem, check_unique, read_text

log = logging.getLogger(__name__)

COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
CLIP_SUFFIX = ".mp4"


def clip_name(youtube_id: str, time_start: int, time_end: int) -> str:
    """The clip's file name as the official download scripts write it."""
    return f"{youtube_id}_{int(time_start):06d}_{int(time_end):06d}{CLIP_SUFFIX}"


def _seconds(path: Path, line: int, key: str, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or value != int(value):
        raise DatasetError(path, f"{key} must be a whole number of seconds, got {text!r}", line)
    return int(value)


def read_csv(path: str | Path) -> list[tuple[str, str, int]]:
    """(clip name without suffix, label, line number) for every row of an official Kinetics CSV."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path)))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:4]] != list(COLUMNS[:4]):
        raise DatasetError(path, f"expected the header {','.join(COLUMNS)}, got {','.join(header or [])!r}", 1)
    rows = []
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip():
            continue
        if len(row) < 4 or not row[0].strip() or not row[1].strip():
            raise DatasetError(path, f"expected label,youtube_id,time_start,time_end,..., got {','.join(row)!r:.80}",
                               line)
        label, youtube_id = row[0].strip(), row[1].strip()
        start, end = (_seconds(path, line, key, row[k]) for k, key in ((2, "time_start"), (3, "time_end")))
        rows.append((clip_name(youtube_id, start, end)[: -len(CLIP_SUFFIX)], label, line))
    return rows


class Kinetics(Split):
    """One split of Kinetics: `samples` (clip name, label) in CSV order, the clips found up front."""

    layout = "kinetics"

    def __init__(self, root: str | Path, split: str = "train", video_dir: str | Path | None = None,
                 skip_missing_videos: bool = False):
        root = Path(root)
        super().__init__(root, split, Path(video_dir) if video_dir else root, root / f"{split}.csv")
        if not self.annotation_file.is_file():
            found = sorted(p.name for p in root.glob("*.csv")) if root.is_dir() else []
            raise DatasetError(self.annotation_file, f"annotation file not found (split {split!r}: expected "
                                                     f"<data_root>/{split}.csv; CSV files there: {found})")
        rows = read_csv(self.annotation_file)
        train = root / "train.csv"
        names = {label for _, label, _ in (rows if split == "train" or not train.exists() else read_csv(train))}
        self.classes = sorted(names)
        index = {name: i for i, name in enumerate(self.classes)}
        for clip, label, line in rows:
            if label not in index:
                raise DatasetError(self.annotation_file, f"clip {clip}: class {label!r} is not in {train.name}", line)
        samples = [(clip, index[label]) for clip, label, _ in rows]
        check_unique(self.annotation_file, samples, [line for *_, line in rows])
        paths = [self._find(clip, self.classes[label]) for clip, label in samples]
        self.missing = [VideoProblem(clip, self.video_dir / f"{clip}{CLIP_SUFFIX}", "clip not found (flat or in "
                                     "its class folder)") for (clip, _), path in zip(samples, paths) if path is None]
        if self.missing and not skip_missing_videos:
            shown = ", ".join(p.video_id for p in self.missing[:5])
            raise DatasetError(self.annotation_file, f"{len(self.missing)} of {len(samples)} clips are not in "
                               f"{self.video_dir} (flat or in class folders), e.g. {shown}; pass "
                               "skip_missing_videos=True to leave them out")
        if self.missing:
            log.warning("%s: %d of %d clips are missing and left out (skip_missing_videos), first: %s",
                        self.annotation_file, len(self.missing), len(samples), self.missing[0].video_id)
        kept = [(sample, path) for sample, path in zip(samples, paths) if path is not None]
        self.samples = [sample for sample, _ in kept]
        self._paths = [path for _, path in kept]
        self._loaded()

    def _find(self, clip: str, label: str) -> Path | None:
        name = f"{clip}{CLIP_SUFFIX}"
        for path in (self.video_dir / name, self.video_dir / label / name,
                     self.video_dir / label.replace(" ", "_") / name):
            if path.is_file():
                return path
        return None

    def media_path(self, index: int) -> Path:
        return self._paths[index]


def write_csv(path: str | Path, rows: Sequence[tuple[str, str, int, int]], split: str) -> None:
    """Write an official-format CSV of (label, youtube_id, time_start, time_end) rows."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for label, youtube_id, start, end in rows:
        writer.writerow([label, youtube_id, int(start), int(end), split])
    write_text_atomic(Path(path), out.getvalue())

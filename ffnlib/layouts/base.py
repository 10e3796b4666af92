"""What every dataset layout's reader offers, and the errors a layout raises.

A split reader (`Split`) holds a split's class names (`classes`, index = label) and its samples
(`samples`: (video_id, label) in annotation-file order) and knows where each sample's media lives. It
decodes nothing until asked: `decode(i)` gives the sample's video (a `ffnlib.video.DecodedVideo` or a
`ffnlib.frames.FrameFolder`: `num_frames`, `height`, `width`, `rgb(frame_idx)`), `check_files` lists
every missing or unreadable one up front.

Annotation errors are `DatasetError`s naming the file (and the line); media errors are
`ffnlib.video.VideoDecodeError`s naming the file or folder, the video id and the annotation file.
"""
from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from ffnlib.errors import UserError
from ffnlib.frames import open_frame_folder
from ffnlib.video import VideoDecodeError, decode_video

log = logging.getLogger(__name__)

NO_LABEL = -1  # the label of samples from an unlabelled split (SSv2's test split)


class DatasetError(UserError, ValueError):
    """An annotation file that cannot be used: `path` (and `line`, 1-based) name it, the message says
    what was expected. (Given one argument, it is the whole message: how a DataLoader re-raises a
    worker's error in the main process.)"""

    def __init__(self, path: str | Path, message: str | None = None, line: int | None = None):
        self.path = str(path)
        self.line = line
        if message is None:
            super().__init__(str(path))
        else:
            super().__init__(f"{path}{'' if line is None else f', line {line}'}: {message}")


class VideoProblem(NamedTuple):
    """A video (file or frame folder) that is missing or cannot be decoded."""

    video_id: str
    path: Path
    cause: str

    def __str__(self) -> str:
        return f"{self.path}: {self.cause} (video id {self.video_id})"


def missing_file(path: Path) -> DatasetError:
    """The error for an annotation file that is not there."""
    where = "" if path.parent.is_dir() else f" (folder {path.parent} does not exist)"
    return DatasetError(path, "annotation file not found" + where)


def closest_hint(name: str, classes) -> str:
    """"; closest class: '...'" for the class text nearest `name` (a typo's likely fix), or ""."""
    close = difflib.get_close_matches(name, list(classes), n=1)
    return f"; closest class: {close[0]!r}" if close else ""


def read_text(path: Path) -> str:
    """An annotation file's text (UTF-8, a byte-order mark dropped); a missing file or one that is not
    UTF-8 is a DatasetError naming it."""
    if not path.is_file():
        raise missing_file(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(path, f"not UTF-8 text ({e})") from e


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line of a UTF-8 text file, line ends stripped."""
    return [(number, line.rstrip("\r\n")) for number, line in enumerate(read_text(path).split("\n"), start=1)
            if line.strip()]


def check_unique(path: Path, samples: list[tuple[str, int]], lines: list[int]) -> None:
    """Refuse a video id listed twice, naming both lines."""
    seen: dict[str, int] = {}
    for (video_id, _), line in zip(samples, lines):
        if video_id in seen:
            raise DatasetError(path, f"video {video_id!r} is listed twice (first on line {seen[video_id]})", line)
        seen[video_id] = line


class Split:
    """One split of a dataset on disk. Subclasses set `layout`, fill `classes` and `samples`, and say
    where sample i's media is (`media_path`) and how to open it (`_open`)."""

    layout = ""
    media = "video"  # "video": one file per sample; "frames": one folder of JPEG frames per sample

    def __init__(self, root: Path, split: str, video_dir: Path, annotation_file: Path):
        self.root = Path(root)
        self.split = split
        self.video_dir = Path(video_dir)
        self.annotation_file = Path(annotation_file)
        self.classes: list[str] = []
        self.samples: list[tuple[str, int]] = []

    def _loaded(self) -> None:
        log.info("%s %s (%s): %d videos, %d classes", self.root, self.split, self.layout, len(self.samples),
                 self.num_classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return self.samples[index]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, videos={len(self)}, "
                f"classes={self.num_classes})")

    def media_path(self, index: int) -> Path:
        raise NotImplementedError

    def _open(self, index: int):
        """Sample `index`'s video: a DecodedVideo (video files) or a FrameFolder (frame folders)."""
        return decode_video(self.media_path(index))

    def _quick_check(self, index: int) -> None:
        """Raise VideoDecodeError when sample `index`'s media is plainly missing (no decoding)."""
        path = self.media_path(index)
        if not path.is_file():
            raise VideoDecodeError(path, "is a directory, expected a video file" if path.is_dir()
                                   else "file does not exist")
        if path.stat().st_size == 0:
            raise VideoDecodeError(path, "file is empty (0 bytes)")

    def decode(self, index: int):
        """The decoded video of sample `index`; a failure names the file, the video id and the annotation file."""
        video_id, _ = self.samples[index]
        try:
            return self._open(index)
        except VideoDecodeError as e:
            raise VideoDecodeError(e.path, f"{e.cause} (video id {video_id}, sample {index} of "
                                           f"{self.annotation_file})") from e

    def check_files(self, decode: bool = True, progress: bool = True) -> list[VideoProblem]:
        """Every missing or unreadable video of the split, up front (empty list: all good).

        `decode=True` decodes every file, or every frame of every folder (slow on a full dataset);
        `decode=False` only checks that each file exists and is not empty, or that each frame folder
        holds frames 1..N (and N as the annotation says), reading no image.
        """
        problems: list[VideoProblem] = []
        for index, (video_id, _) in enumerate(tqdm(self.samples, desc=f"checking {self.split} videos",
                                                   disable=not progress)):
            try:
                if decode:
                    video = self._open(index)
                    if self.media == "frames":
                        for start in range(0, video.num_frames, 64):
                            video.rgb(range(start, min(start + 64, video.num_frames)))
                else:
                    self._quick_check(index)
            except VideoDecodeError as e:
                problems.append(VideoProblem(video_id, Path(e.path), e.cause))
        if problems:
            log.warning("%d of %d %s videos are missing or unreadable, first: %s",
                        len(problems), len(self.samples), self.split, problems[0])
        return problems


class FrameSplit(Split):
    """A split whose videos are folders of JPEG frames named by `frame_template` (1-based)."""

    media = "frames"

    def __init__(self, root: Path, split: str, video_dir: Path, annotation_file: Path, frame_template: str):
        super().__init__(root, split, video_dir, annotation_file)
        self.frame_template = frame_template
        self.num_video_frames: list[int | None] = []  # per sample: the count the annotation gives, if any

    def media_path(self, index: int) -> Path:
        return self.video_dir / self.samples[index][0]

    def _open(self, index: int):
        expected = self.num_video_frames[index] if self.num_video_frames else None
        return open_frame_folder(self.media_path(index), self.frame_template, expected)

    def _quick_check(self, index: int) -> None:
        self._open(index)

"""Something-Something V2 (and the built-in data, which uses its layout) as PyTorch datasets.

On disk (`root`, videos in `video_dir`, by default `root` too):

    something-something-v2-labels.json       {"<class text>": "<index as a string>", ...}
    something-something-v2-train.json        [{"id", "label", "template", "placeholders"}, ...]
    something-something-v2-validation.json   same fields
    something-something-v2-test.json         [{"id"}, ...] (no labels: label -1)
    <video_dir>/<id>.webm

A sample's class is `labels[template with every "[" and "]" removed]`.

`SSv2` reads a split: its class names, its (video_id, label) pairs and where each video lives. It
decodes nothing until asked (`check_files`, `describe_videos`). Two views turn it into clips:

    VideoClips(source, num_frames=16)              -> (clip, label)
    MultiFrameClips(source, frame_counts=(4, 8, 16)) -> (clip_4, clip_8, clip_16, label)

A clip is (C, T, frame_size, frame_size) float32, normalised with the ImageNet mean and std. One
sample decodes its video once, draws the frame indices for every frame count (TSN segments, drawn
independently, see `ffnlib.sampling`), converts the union of those frames to RGB once, and applies
one spatial draw to all of them (see `ffnlib.transforms`).

Randomness: sample `index` in epoch `epoch` draws from `np.random.default_rng([seed, epoch, index])`,
so a sample is the same whatever the number of data-loader workers. Test mode (`train=False`) draws
nothing. Errors name the file and the video id; nothing is ever replaced by another video.
"""
from __future__ import annotations

import difflib
import json
import logging
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ffnlib import sampling
from ffnlib.errors import UserError
from ffnlib.paths import project_path
from ffnlib.transforms import ClipTransform, Crop, to_clips
from ffnlib.video import DecodedVideo, VideoDecodeError, decode_video

log = logging.getLogger(__name__)

LABELS_FILE = "something-something-v2-labels.json"
SPLIT_FILES = {
    "train": "something-something-v2-train.json",
    "validation": "something-something-v2-validation.json",
    "test": "something-something-v2-test.json",
}
VIDEO_SUFFIX = ".webm"
NO_LABEL = -1  # the label of test-split samples


class DatasetError(UserError, ValueError):
    """An annotation file that cannot be used: `path` names it, the message says what was expected.
    (Given one argument, it is the whole message, as a DataLoader re-raises a worker's error.)"""

    def __init__(self, path: str | Path, message: str | None = None):
        self.path = str(path)
        super().__init__(f"{path}: {message}" if message is not None else str(path))


class VideoProblem(NamedTuple):
    """A video that is missing or cannot be decoded."""

    video_id: str
    path: Path
    cause: str

    def __str__(self) -> str:
        return f"{self.path}: {self.cause} (video id {self.video_id})"


def template_to_class(template: str) -> str:
    """The class text of a template: "Putting [something] on [something]" -> "Putting something on something"."""
    return template.replace("[", "").replace("]", "")


def _read_json(path: Path):
    if not path.is_file():
        raise DatasetError(path, "annotation file not found" + ("" if path.parent.is_dir() else
                                                                f" (folder {path.parent} does not exist)"))
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
            close = difflib.get_close_matches(name, list(class_to_idx), n=1)
            hint = f"; closest class: {close[0]!r}" if close else ""
            raise DatasetError(path, f"video id {video_id}: template {template!r} is no class of the labels file{hint}")
        samples.append((video_id, class_to_idx[name]))
    return samples


class SSv2:
    """One split of Something-Something V2 (or anything in its layout): classes, samples, video paths.

    `root` holds the JSON files; videos are `<video_dir or root>/<id>.webm`. `samples` is a list of
    (video_id, label) in file order; `classes[label]` is the class text.
    """

    def __init__(self, root: str | Path, split: str = "train", video_dir: str | Path | None = None):
        if split not in SPLIT_FILES:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_FILES)}")
        self.root = Path(root)
        self.split = split
        self.video_dir = Path(video_dir) if video_dir is not None else self.root
        self.split_file = self.root / SPLIT_FILES[split]
        self.classes: list[str] = read_labels(self.root / LABELS_FILE)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = read_split(self.split_file, self.class_to_idx, labelled=split != "test")
        log.info("%s %s: %d videos, %d classes", self.root, split, len(self.samples), self.num_classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return self.samples[index]

    def __repr__(self) -> str:
        return f"SSv2(root={str(self.root)!r}, split={self.split!r}, videos={len(self)}, classes={self.num_classes})"

    def video_path(self, video_id: str) -> Path:
        return self.video_dir / f"{video_id}{VIDEO_SUFFIX}"

    def decode(self, index: int) -> DecodedVideo:
        """The decoded video of sample `index`; a failure names the file, the video id and the split file."""
        return decode_sample(self, index)

    def check_files(self, decode: bool = True, progress: bool = True) -> list[VideoProblem]:
        """Every missing or unreadable video of the split, up front (empty list: all good).

        `decode=True` decodes every file (slow on the full SSv2: about 169k train videos);
        `decode=False` only checks that each file exists and is not empty.
        """
        problems: list[VideoProblem] = []
        for video_id, _ in tqdm(self.samples, desc=f"checking {self.split} videos", disable=not progress):
            path = self.video_path(video_id)
            try:
                if decode:
                    decode_video(path)
                elif not path.is_file():
                    raise VideoDecodeError(path, "file does not exist")
                elif path.stat().st_size == 0:
                    raise VideoDecodeError(path, "file is empty (0 bytes)")
            except VideoDecodeError as e:
                problems.append(VideoProblem(video_id, path, e.cause))
        if problems:
            log.warning("%d of %d %s videos are missing or unreadable, first: %s",
                        len(problems), len(self.samples), self.split, problems[0])
        return problems


def open_dataset(data_root: str | Path = "", split: str = "train", video_dir: str | Path = "",
                 builtin: dict | None = None, progress: bool = True) -> SSv2:
    """The split of the SSv2-layout dataset at `data_root`, or, when `data_root` is empty, of the
    built-in synthetic data, written on first use by `ffnlib.synthetic.prepare(**builtin)` (as the
    trainer does with its `builtin` knobs). An empty `video_dir` means videos next to the JSON files.
    Relative paths are taken from the project root, as the trainer does. `progress`: a bar while the
    built-in data is written."""
    video_dir = project_path(video_dir) if video_dir else None
    if data_root:
        return SSv2(project_path(data_root), split, video_dir=video_dir)
    from ffnlib import synthetic

    return SSv2(synthetic.prepare(**(builtin or {}), progress=progress), split, video_dir=video_dir)


def decode_sample(source, index: int) -> DecodedVideo:
    """Decode the video of `source.samples[index]`, naming the video id in any error."""
    video_id, _ = source.samples[index]
    path = source.video_path(video_id)
    try:
        return decode_video(path)
    except VideoDecodeError as e:
        where = getattr(source, "split_file", None)
        raise VideoDecodeError(
            path, f"{e.cause} (video id {video_id}, sample {index}" + (f" of {where})" if where else ")")
        ) from e


def describe_videos(source, indices: Sequence[int] | None = None, progress: bool = True):
    """A pandas DataFrame, one row per sample in `indices` (default all): video_id, label, class_name,
    num_video_frames, height, width. Decodes each video (an unreadable one raises, naming it)."""
    import pandas as pd

    indices = range(len(source.samples)) if indices is None else indices
    rows = []
    for index in tqdm(indices, desc="reading videos", disable=not progress):
        video_id, label = source.samples[index]
        video = decode_sample(source, index)
        rows.append({
            "video_id": video_id,
            "label": label,
            "class_name": source.classes[label] if label >= 0 else "",
            "num_video_frames": video.num_frames,
            "height": video.height,
            "width": video.width,
        })
    return pd.DataFrame(rows, columns=["video_id", "label", "class_name", "num_video_frames", "height", "width"])


@dataclass(frozen=True)
class SampleDraw:
    """Everything random about one sample: the frame indices per frame count and the crop.

    `frame_idx[i]` is (frame_counts[i],) int64 into the video; `crop` is the train crop box in frame
    pixels, None in test mode (resize the shorter side, then centre crop).
    """

    index: int
    video_id: str
    label: int
    frame_counts: tuple[int, ...]
    frame_idx: tuple[np.ndarray, ...]
    crop: Crop | None


class _ClipView(torch.utils.data.Dataset):
    """Shared machinery of the views: one decode, one union of frames, one spatial draw per sample."""

    def __init__(self, source, frame_counts: Sequence[int], train: bool, frame_size: int,
                 resize_size: int, seed: int):
        frame_counts = tuple(int(t) for t in frame_counts)
        if not frame_counts or min(frame_counts) < 1:
            raise ValueError(f"frame counts must be positive, got {frame_counts}")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        self.source = source
        self.frame_counts = frame_counts
        self.train = bool(train)
        self.transform = ClipTransform(train=self.train, frame_size=frame_size, resize_size=resize_size)
        self.seed = int(seed)
        self.epoch = 0

    @property
    def frame_size(self) -> int:
        return self.transform.frame_size

    @property
    def resize_size(self) -> int:
        return self.transform.resize_size

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    @property
    def num_classes(self) -> int:
        return len(self.source.classes)

    def set_epoch(self, epoch: int) -> None:
        """Draw the next epoch's samples afresh (call before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source.samples)

    def _check_index(self, index: int) -> int:
        """`index` as a non-negative int (negative counts from the end); IndexError when out of range."""
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range: the view has {len(self)} samples")
        return index % len(self)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample `index` in the current epoch: seeded with (seed, epoch, index)."""
        return np.random.default_rng([self.seed, self.epoch, self._check_index(index)])

    def draw(self, index: int, video: DecodedVideo | None = None,
             frame_counts: Sequence[int] | None = None) -> SampleDraw:
        """The frame indices and crop that sample `index` uses (decodes its video unless given)."""
        index = self._check_index(index)
        video = decode_sample(self.source, index) if video is None else video
        frame_counts = self.frame_counts if frame_counts is None else tuple(int(t) for t in frame_counts)
        rng = self.rng(index) if self.train else None
        frame_idx = sampling.multi_segment_indices(video.num_frames, frame_counts, train=self.train, rng=rng)
        box = self.transform.draw(video.height, video.width, rng)
        video_id, label = self.source.samples[index]
        return SampleDraw(index, video_id, label, frame_counts, tuple(frame_idx), box)

    def load(self, index: int, frame_counts: Sequence[int] | None = None,
             video: DecodedVideo | None = None) -> tuple[list[torch.Tensor], int]:
        """Clips of sample `index`, one (C, T_i, S, S) float32 per frame count, and its label (decodes
        its video unless given)."""
        index = self._check_index(index)
        video = decode_sample(self.source, index) if video is None else video
        plan = self.draw(index, video, frame_counts)
        frame_idx, positions = sampling.union(plan.frame_idx)  # (U,), [(T_i,), ...]
        rgb = torch.from_numpy(video.rgb(frame_idx))  # (U, H, W, 3) uint8
        frames = rgb.permute(0, 3, 1, 2)  # (U, 3, H, W), memory stays channels-last
        resized = self.transform.spatial(frames, plan.crop)  # (U, 3, S, S) uint8
        return to_clips(resized, positions), plan.label  # [(3, T_i, S, S) float32]


class VideoClips(_ClipView):
    """Single-T view: `view[index]` -> (clip (C, num_frames, S, S) float32, label int).

    `view[(index, num_frames)]` overrides T for that one sample (for batch samplers that pick one T
    per batch).
    """

    def __init__(self, source, num_frames: int = 16, train: bool = True, frame_size: int = 224,
                 resize_size: int = 256, seed: int = 0):
        super().__init__(source, (num_frames,), train, frame_size, resize_size, seed)
        self.num_frames = int(num_frames)

    def __getitem__(self, item) -> tuple[torch.Tensor, int]:
        index, num_frames = item if isinstance(item, tuple) else (item, self.num_frames)
        clips, label = self.load(index, (num_frames,))
        return clips[0], label


class MultiFrameClips(_ClipView):
    """Multi-frame view: `view[index]` -> (clip_T1, clip_T2, ..., label), one (C, T_i, S, S) float32
    clip per entry of `frame_counts`, in that order; index sets drawn independently, one crop shared."""

    def __init__(self, source, frame_counts: Sequence[int] = sampling.FRAME_COUNTS, train: bool = True,
                 frame_size: int = 224, resize_size: int = 256, seed: int = 0):
        super().__init__(source, frame_counts, train, frame_size, resize_size, seed)

    def __getitem__(self, index: int) -> tuple:
        clips, label = self.load(index)
        return (*clips, label)

"""Datasets as PyTorch datasets: any layout of `ffnlib.layouts` (or the built-in data) through the same views.

`open_dataset(data_root, split, video_dir, dataset="ssv2")` reads one split of a dataset in one of the
layouts of `ffnlib.layouts` (ssv2, ssv1, frames, kinetics, hmdb51, video_list): its class names, its
(video_id, label) pairs and where each video lives. It decodes nothing until asked (`check_files`,
`describe_videos`). Two views turn any of them into clips:

    VideoClips(source, num_frames=16)              -> (clip, label)
    MultiFrameClips(source, frame_counts=(4, 8, 16)) -> (clip_4, clip_8, clip_16, label)

A clip is (C, T, frame_size, frame_size) uint8 RGB, channels first; a batch of them is (B, C, T, S, S)
uint8, and `ffnlib.transforms.normalize` makes the model's float32 input of it, on the device (the
training loop and `evaluate` do it for each batch; so a loader worker ships a quarter of float32's
bytes and spends nothing on arithmetic). One sample decodes its video once (a video file, or only the sampled JPEG files of a frame folder), draws
the frame indices for every frame count (TSN segments, drawn independently, see `ffnlib.sampling`),
converts the union of those frames to RGB once, and applies one spatial draw to all of them (see
`ffnlib.transforms`). Every layout gives the same sample for the same pixels.

Randomness: sample `index` in epoch `epoch` draws from `np.random.default_rng([seed, epoch, index])`,
so a sample is the same whatever the number of data-loader workers. The epoch is the view's own
(`set_epoch`) or comes with the item: `view[SampleKey(index, epoch)]`, which is how the training
loader asks, so that workers kept alive across epochs (persistent workers, which hold a copy of the
view made when they started) draw each epoch afresh. Test mode (`train=False`) draws nothing. Errors name the file and the video id; nothing is ever replaced by another video.
"""
from __future__ import annotations

import logging
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ffnlib import sampling
from ffnlib.errors import ConfigError
from ffnlib.layouts import (DEFAULT_SPLITS, LAYOUTS, NO_LABEL, DatasetError, Split, SSv2, VideoProblem,
                            check_options, open_split)
from ffnlib.paths import project_path
from ffnlib.transforms import ClipTransform, Crop, to_clips
from ffnlib.video import DecodedVideo

log = logging.getLogger(__name__)

__all__ = ["DATA_KEYS", "DatasetError", "MultiFrameClips", "NO_LABEL", "SSv2", "SampleDraw", "SampleKey", "Split",
           "VideoClips", "VideoProblem", "decode_sample", "describe_videos", "open_dataset", "open_train_val"]

# The layouts the built-in data can be written in (`ffnlib.synthetic.prepare(layout=...)`).
BUILTIN_LAYOUTS = ("ssv2", "ssv1")
# The TrainConfig fields that say which data a run reads (`open_train_val` takes them by these names).
DATA_KEYS = ("data_root", "video_dir", "dataset", "frame_template", "fold", "skip_missing_videos", "train_split",
             "val_split", "builtin")


def open_dataset(data_root: str | Path = "", split: str = "train", video_dir: str | Path = "", dataset: str = "ssv2",
                 *, frame_template: str = "", fold: int = 1, skip_missing_videos: bool = False,
                 builtin: dict | None = None, progress: bool = True) -> Split:
    """One split of the dataset at `data_root` in layout `dataset` (see `ffnlib.layouts`), or, when
    `data_root` is empty, of the built-in synthetic data written in that layout (ssv2 or ssv1) on first
    use by `ffnlib.synthetic.prepare(**builtin)` (as the trainer does with its `builtin` knobs).

    `video_dir` holds the media ("" = the layout's default, next to the annotations). Relative paths
    are taken from the project root, as the trainer does. `frame_template` names the frames of the
    frame layouts ("" = the layout's own), `fold` is HMDB51's split (1-3), `skip_missing_videos` leaves
    out the Kinetics clips that are missing (otherwise an error lists them). `progress`: a bar while the
    built-in data is written.
    """
    if not isinstance(dataset, str):
        raise TypeError(f"open_dataset: dataset must be a layout name {sorted(LAYOUTS)}, got "
                        f"{type(dataset).__name__} (the built-in knobs go in builtin=)")
    check_options(dataset, frame_template, fold, skip_missing_videos)
    if not split:
        raise ConfigError(f"open_dataset: no split given; the {dataset} layout's are {DEFAULT_SPLITS[dataset]}")
    video_dir = project_path(video_dir) if video_dir else None
    if data_root:
        root = project_path(data_root)
    elif dataset in BUILTIN_LAYOUTS:
        from ffnlib import synthetic

        root = synthetic.prepare(**(builtin or {}), layout=dataset, progress=progress)
    else:
        raise ConfigError(f"open_dataset: data_root is empty (the built-in data), which is written in the "
                         f"{' or '.join(BUILTIN_LAYOUTS)} layout only, not {dataset!r}")
    return open_split(dataset, root, split, video_dir, frame_template=frame_template, fold=fold,
                      skip_missing_videos=skip_missing_videos)


def open_train_val(data_root: str | Path = "", video_dir: str | Path = "", dataset: str = "ssv2", *,
                   frame_template: str = "", fold: int = 1, skip_missing_videos: bool = False, train_split: str = "",
                   val_split: str = "", builtin: dict | None = None, progress: bool = True) -> tuple[Split, Split]:
    """The training and validation splits (`train_split`, `val_split`; "" = the layout's own, see
    `ffnlib.layouts.DEFAULT_SPLITS`) through `open_dataset`; the keywords are `DATA_KEYS`. The
    validation split takes the training split's classes: numbered classes (frames without
    category.txt, video_list) it lacks videos of are added; any other difference is an error."""
    check_options(dataset, frame_template, fold, skip_missing_videos)
    names = (train_split or DEFAULT_SPLITS[dataset][0], val_split or DEFAULT_SPLITS[dataset][1])
    train, val = (open_dataset(data_root, split, video_dir, dataset, frame_template=frame_template, fold=fold,
                               skip_missing_videos=skip_missing_videos, builtin=builtin, progress=progress)
                  for split in names)
    if val.classes != train.classes:
        if val.classes != train.classes[: len(val.classes)]:
            raise DatasetError(val.annotation_file, f"its {val.num_classes} classes are not those of the training "
                                                    f"split {train.annotation_file} ({train.num_classes} classes)")
        val.classes = list(train.classes)  # numbered classes: the validation list lacks the last ones
    return train, val


def decode_sample(source, index: int):
    """The decoded video of `source.samples[index]` (a DecodedVideo, or a FrameFolder for frame
    layouts: `num_frames`, `height`, `width`, `rgb(frame_idx)`), naming the video id in any error."""
    return source.decode(index)


def describe_videos(source, indices: Sequence[int] | None = None, progress: bool = True):
    """A pandas DataFrame, one row per sample in `indices` (default all): video_id, label, class_name,
    num_video_frames, height, width. Opens each video (an unreadable one raises, naming it); a frame
    folder is listed and one frame's header read, no frame decoded."""
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


class SampleKey(NamedTuple):
    """What a batch sampler hands a view: sample `index`, drawn as in epoch `epoch`, and for a
    `VideoClips` the T of that one sample (`num_frames`; None: the view's own)."""

    index: int
    epoch: int
    num_frames: int | None = None


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

    def rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The generator of sample `index` in `epoch` (None: the view's current epoch): seeded with
        (seed, epoch, index)."""
        epoch = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng([self.seed, epoch, self._check_index(index)])

    def draw(self, index: int, video: DecodedVideo | None = None,
             frame_counts: Sequence[int] | None = None, epoch: int | None = None) -> SampleDraw:
        """The frame indices and crop that sample `index` uses in `epoch` (None: the view's current
        one); decodes its video unless given."""
        index = self._check_index(index)
        video = decode_sample(self.source, index) if video is None else video
        frame_counts = self.frame_counts if frame_counts is None else tuple(int(t) for t in frame_counts)
        rng = self.rng(index, epoch) if self.train else None
        frame_idx = sampling.multi_segment_indices(video.num_frames, frame_counts, train=self.train, rng=rng)
        box = self.transform.draw(video.height, video.width, rng)
        video_id, label = self.source.samples[index]
        return SampleDraw(index, video_id, label, frame_counts, tuple(frame_idx), box)

    def load(self, index: int, frame_counts: Sequence[int] | None = None,
             video: DecodedVideo | None = None, epoch: int | None = None) -> tuple[list[torch.Tensor], int]:
        """Clips of sample `index` in `epoch` (None: the view's current one), one (C, T_i, S, S) uint8
        per frame count, and its label (decodes its video unless given)."""
        index = self._check_index(index)
        video = decode_sample(self.source, index) if video is None else video
        plan = self.draw(index, video, frame_counts, epoch)
        frame_idx, positions = sampling.union(plan.frame_idx)  # (U,), [(T_i,), ...]
        rgb = torch.from_numpy(video.rgb(frame_idx, plan.crop))  # (U, h, w, 3) uint8: the crop box (train) or whole
        frames = rgb.permute(0, 3, 1, 2)  # (U, 3, h, w), memory stays channels-last
        resized = self.transform.spatial_cropped(frames)  # (U, 3, S, S) uint8
        return to_clips(resized, positions), plan.label  # [(3, T_i, S, S) uint8]


class VideoClips(_ClipView):
    """Single-T view: `view[index]` -> (clip (C, num_frames, S, S) uint8, label int).

    `view[(index, num_frames)]` overrides T for that one sample (for batch samplers that pick one T
    per batch); `view[SampleKey(index, epoch, num_frames)]` also names the epoch.
    """

    def __init__(self, source, num_frames: int = 16, train: bool = True, frame_size: int = 224,
                 resize_size: int = 256, seed: int = 0):
        super().__init__(source, (num_frames,), train, frame_size, resize_size, seed)
        self.num_frames = int(num_frames)

    def __getitem__(self, item) -> tuple[torch.Tensor, int]:
        if isinstance(item, SampleKey):
            index, epoch, num_frames = item
        elif isinstance(item, tuple):
            (index, num_frames), epoch = item, None
        else:
            index, epoch, num_frames = item, None, None
        clips, label = self.load(index, (num_frames or self.num_frames,), epoch=epoch)
        return clips[0], label


class MultiFrameClips(_ClipView):
    """Multi-frame view: `view[index]` or `view[SampleKey(index, epoch)]` -> (clip_T1, clip_T2, ..., label),
    one (C, T_i, S, S) uint8 clip per entry of `frame_counts`, in that order; index sets drawn
    independently, one crop shared."""

    def __init__(self, source, frame_counts: Sequence[int] = sampling.FRAME_COUNTS, train: bool = True,
                 frame_size: int = 224, resize_size: int = 256, seed: int = 0):
        super().__init__(source, frame_counts, train, frame_size, resize_size, seed)

    def __getitem__(self, item) -> tuple:
        if isinstance(item, SampleKey):
            if item.num_frames is not None:
                raise ValueError(f"{item}: a MultiFrameClips sample has the view's frame counts "
                                 f"{self.frame_counts}, not one num_frames")
            clips, label = self.load(item.index, epoch=item.epoch)
        else:
            clips, label = self.load(item)
        return (*clips, label)

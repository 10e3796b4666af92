"""Dataset layouts on disk: one module owns each (file names, reader, annotation writer).

    ssv2        Something-Something V2: JSON annotations, <id>.webm              (ffnlib.layouts.ssv2)
    ssv1        Something-Something V1: CSV annotations, JPEG frame folders      (ffnlib.layouts.ssv1)
    frames      TSM list files `<folder> <num_frames> <label>`, JPEG frame folders (ffnlib.layouts.frames)
    kinetics    Kinetics CSV, <youtube_id>_<start>_<end>.mp4                      (ffnlib.layouts.kinetics)
    hmdb51      HMDB51 split files, <class>/<video>.avi                           (ffnlib.layouts.hmdb51)
    video_list  a `path,label` CSV of video files                                 (ffnlib.layouts.video_list)

`open_split(dataset, root, split, video_dir, ...)` reads one split; every reader offers the same:
`len`, `[i] -> (video_id, label)`, `classes`, `num_classes`, `decode(i)`, `check_files` (see
`ffnlib.layouts.base.Split`). These modules import nothing of ffnlib but `video`, `frames` and
`paths`, so the data writers (`ffnlib.synthetic`, `ffnlib.bench.clips`) and the readers
(`ffnlib.datasets`) can both import them.
"""
from __future__ import annotations

from pathlib import Path

from ffnlib.frames import check_template

from .base import NO_LABEL, DatasetError, FrameSplit, Split, VideoProblem
from .frames import FrameList
from .hmdb51 import HMDB51
from .kinetics import Kinetics
from .ssv1 import SSv1
from .ssv2 import SSv2
from .video_list import VideoList

LAYOUTS = {"ssv2": SSv2, "ssv1": SSv1, "frames": FrameList, "kinetics": Kinetics, "hmdb51": HMDB51,
           "video_list": VideoList}
FRAME_LAYOUTS = ("ssv1", "frames")  # the layouts that take a frame_template
DEFAULT_SPLITS = {  # the (train, validation) split names of each layout, as `open_splits` asks for them
    "ssv2": ("train", "validation"),
    "ssv1": ("train", "validation"),
    "frames": ("train_videofolder.txt", "val_videofolder.txt"),
    "kinetics": ("train", "validate"),
    "hmdb51": ("train", "test"),
    "video_list": ("train.csv", "val.csv"),
}


def check_options(dataset: str, frame_template: str = "", fold: int = 1, skip_missing_videos: bool = False) -> None:
    """Refuse an unknown layout, or an option the layout does not use (so a mistake is never ignored)."""
    if dataset not in LAYOUTS:
        raise ValueError(f"dataset {dataset!r}: expected one of {sorted(LAYOUTS)}")
    if frame_template and dataset not in FRAME_LAYOUTS:
        raise ValueError(f"frame_template={frame_template!r} is for the frame layouts {FRAME_LAYOUTS}, "
                         f"not {dataset!r} (leave it empty)")
    if frame_template:
        check_template(frame_template)
    if fold not in (1, 2, 3) or isinstance(fold, bool):
        raise ValueError(f"fold={fold!r}: expected 1, 2 or 3 (HMDB51's official splits)")
    if fold != 1 and dataset != "hmdb51":
        raise ValueError(f"fold={fold!r} is for the hmdb51 layout, not {dataset!r} (leave it at 1)")
    if skip_missing_videos and dataset != "kinetics":
        raise ValueError(f"skip_missing_videos is for the kinetics layout, not {dataset!r} (a missing video "
                         "is an error elsewhere)")


def open_split(dataset: str, root: str | Path, split: str, video_dir: str | Path | None = None, *,
               frame_template: str = "", fold: int = 1, skip_missing_videos: bool = False) -> Split:
    """One split of the dataset at `root` in layout `dataset` (see the module docstring)."""
    check_options(dataset, frame_template, fold, skip_missing_videos)
    cls = LAYOUTS[dataset]
    if dataset in FRAME_LAYOUTS:
        return cls(root, split, video_dir, frame_template=frame_template)
    if dataset == "hmdb51":
        return cls(root, split, video_dir, fold=fold)
    if dataset == "kinetics":
        return cls(root, split, video_dir, skip_missing_videos=skip_missing_videos)
    return cls(root, split, video_dir)


__all__ = ["DEFAULT_SPLITS", "FRAME_LAYOUTS", "LAYOUTS", "NO_LABEL", "DatasetError", "FrameList", "FrameSplit",
           "HMDB51", "Kinetics", "SSv1", "SSv2", "Split", "VideoList", "VideoProblem", "check_options",
           "open_split"]

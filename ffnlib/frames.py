"""Videos stored as folders of JPEG frames (Something-Something V1, the official TSM frame dumps).

A frame folder holds `frame_template.format(k)` for k = 1..N (1-based, as TSM and SSv1 write
them, e.g. `{:05d}.jpg` -> 00001.jpg). `open_frame_folder` lists the folder (it reads no image),
checks that frames 1..N are all there (and that N is what the annotation says, when it says it), and
returns a `FrameFolder`, which offers what a decoded video offers (`num_frames`, `height`, `width`,
`rgb(frame_idx)`): the views sample it the same way. `rgb` decodes only the frames asked for.

Frames come out as (T, H, W, 3) uint8 RGB, frame index i being file i + 1. JPEG is decoded with
simplejpeg (libjpeg-turbo): on 427x240 frames, one thread, it decoded 1.6-2.7x the frames per
second of Pillow (`python -m ffnlib.bench data` prints both).

Every failure is a `VideoDecodeError` naming the folder or the frame file: a missing or empty folder,
a frame missing in the middle, a frame count that disagrees with the annotation, a corrupt JPEG, a
frame of another size. Nothing is substituted (the official TSM loader takes frame 1 or another
video instead; this never does).
"""
from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import simplejpeg

from ffnlib import paths
from ffnlib.video import VideoDecodeError

if TYPE_CHECKING:
    from ffnlib.transforms import Crop

JPEG_QUALITY = 95  # what `write_frames` writes by default (TSM's ffmpeg extraction uses -q:v 1, about 95)


def check_template(template: str) -> str:
    """`template` if it names frame k by `template.format(k)` (one integer field, no folder part)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        first, second = template.format(1), template.format(2)
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(f"frame_template {template!r}: expected a file name with one integer field such as "
                         f"'{{:05d}}.jpg' ({e})") from None
    if len(fields) != 1 or first == second or "/" in template or os.sep in template:
        raise ValueError(f"frame_template {template!r}: expected a file name with one integer field such as "
                         f"'{{:05d}}.jpg' or 'img_{{:05d}}.jpg'")
    return template


def _template_pattern(template: str) -> re.Pattern:
    """A regex matching the names `template` gives, capturing the frame number."""
    parts = [(literal, field) for literal, field, _, _ in string.Formatter().parse(template)]
    regex = "".join(re.escape(literal) + (r"(\d+)" if field is not None else "") for literal, field in parts)
    return re.compile(regex + r"\Z")


def frame_numbers(folder: Path, template: str) -> list[int]:
    """The frame numbers k for which `template.format(k)` is a file of `folder`, sorted (lists only)."""
    pattern = _template_pattern(template)
    found = []
    for name in os.listdir(folder):
        match = pattern.match(name)
        if match and template.format(int(match.group(1))) == name:
            found.append(int(match.group(1)))
    return sorted(found)


@dataclass
class FrameFolder:
    """One video as a folder of JPEG frames; `files[i]` is frame index i (file number i + 1)."""

    path: Path
    files: list[Path]
    _size: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.files)

    def _read_size(self) -> tuple[int, int]:
        if self._size is None:
            data = _read_bytes(self.files[0])
            try:
                height, width, _, _ = simplejpeg.decode_jpeg_header(data)
            except ValueError as e:
                raise VideoDecodeError(self.files[0], f"corrupt JPEG frame ({e})") from e
            self._size = (int(height), int(width))
        return self._size

    @property
    def height(self) -> int:
        return self._read_size()[0]

    @property
    def width(self) -> int:
        return self._read_size()[1]

    def rgb(self, frame_idx: Sequence[int], box: Crop | None = None) -> np.ndarray:
        """Frames at `frame_idx` (repeats allowed) as (len(frame_idx), H, W, 3) uint8 RGB, or only the
        pixels inside `box` (len(frame_idx), box.height, box.width, 3); decodes each distinct frame
        once and no other."""
        frame_idx = [int(i) for i in frame_idx]
        bad = [i for i in frame_idx if not 0 <= i < self.num_frames]
        if bad:
            raise VideoDecodeError(self.path, f"frame index {bad[0]} out of range: the folder has {self.num_frames} "
                                              f"frames (valid indices 0..{self.num_frames - 1})")
        height, width = self._read_size()
        rows, cols = (slice(None), slice(None)) if box is None else box.slices
        out_size = (height, width) if box is None else (box.height, box.width)
        out = np.empty((len(frame_idx), *out_size, 3), dtype=np.uint8)
        done: dict[int, int] = {}
        for k, i in enumerate(frame_idx):
            if i in done:
                out[k] = out[done[i]]
                continue
            image = decode_jpeg(self.files[i])  # (h, w, 3)
            if image.shape[:2] != (height, width):
                raise VideoDecodeError(self.files[i], f"frame is {image.shape[1]}x{image.shape[0]}, the folder's "
                                                      f"first frame {width}x{height}")
            out[k] = image[rows, cols]
            done[i] = k
        return out


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VideoDecodeError(path, "frame file does not exist") from None
    except OSError as e:
        raise VideoDecodeError(path, f"frame file cannot be read ({e})") from e
    if not data:
        raise VideoDecodeError(path, "frame file is empty (0 bytes)")
    return data


def decode_jpeg(path: str | Path) -> np.ndarray:
    """One JPEG file as (H, W, 3) uint8 RGB (grey JPEGs are expanded to RGB)."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except ValueError as e:
        raise VideoDecodeError(path, f"corrupt JPEG frame ({e})") from e


def open_frame_folder(folder: str | Path, template: str, num_frames: int | None = None) -> FrameFolder:
    """The frames `template.format(1..N)` of `folder`, checked complete (listing only, no decoding).

    `num_frames`: the count the annotation gives (TSM list files), checked against the folder;
    None: N is the highest frame number present. Files not named by the template are ignored.
    """
    folder = Path(folder)
    if not folder.exists():
        raise VideoDecodeError(folder, "frame folder does not exist")
    if not folder.is_dir():
        raise VideoDecodeError(folder, "is not a folder, expected a folder of JPEG frames")
    found = frame_numbers(folder, template)
    if not found:
        others = sorted(os.listdir(folder))
        held = f"it holds {len(others)} other files, e.g. {others[:3]}" if others else "the folder is empty"
        raise VideoDecodeError(folder, f"no frame named like {template.format(1)!r} ({held}; frame_template "
                                       f"is {template!r})")
    last = found[-1]
    if len(found) != last:
        missing = sorted(set(range(1, last + 1)) - set(found))
        raise VideoDecodeError(folder, f"frame {template.format(missing[0])} is missing ({len(missing)} of frames "
                                       f"1..{last} missing)")
    if num_frames is not None and num_frames != last:
        raise VideoDecodeError(folder, f"the annotation says {num_frames} frames, the folder holds {last} "
                                       f"({template.format(1)} .. {template.format(last)})")
    return FrameFolder(folder, [folder / template.format(k) for k in range(1, last + 1)])


def write_frames(folder: str | Path, frames: np.ndarray, template: str = "{:05d}.jpg",
                 quality: int = JPEG_QUALITY) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as JPEG files `template.format(1..T)` in `folder`.

    The frames go to a temporary folder of this process first, renamed into place whole, so a killed
    writer never leaves a folder with part of its frames. An existing folder is refused.
    """
    folder = Path(folder)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{folder}: expected frames (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    check_template(template)
    if folder.exists():
        raise FileExistsError(f"{folder}: exists already; refusing to write frames into it")
    tmp = paths.temporary_path(folder)
    tmp.mkdir(parents=True)
    try:
        for k, image in enumerate(frames, start=1):
            data = simplejpeg.encode_jpeg(np.ascontiguousarray(image), quality=quality, colorspace="RGB",
                                          colorsubsampling="420")
            (tmp / template.format(k)).write_bytes(data)
        tmp.rename(folder)
    except BaseException:
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()
        raise
    return folder

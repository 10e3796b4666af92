"""Video files in and out, with PyAV.

Decoded frames are numpy arrays laid out (T, H, W, 3), uint8 RGB, time first.

Decoding makes one pass over the file and converts to RGB only the frames that are kept: the
conversion, not the decoding, is what costs on small frames. The codec always runs on one thread:
parallelism comes from data-loader workers, and automatic codec threading stalls on a 2-core machine.

Every failure is a `VideoDecodeError` whose message names the file and the cause. Nothing here ever
substitutes another frame or another video for one that cannot be read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ffnlib import paths
from ffnlib.errors import UserError

if TYPE_CHECKING:
    from ffnlib.transforms import Crop

log = logging.getLogger(__name__)

# Containers declare their duration; a stream that decodes to clearly less than that was cut short.
_TRUNCATION_SLACK_FRAMES = 2
_TRUNCATION_SLACK_FRACTION = 0.05
_DECODE_ERRORS = (av.FFmpegError, IndexError, ValueError, OSError, EOFError)


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be read: `path` and `cause` say which and why. (Given one argument, it is
    the whole message: how a DataLoader re-raises a worker's error in the main process.)"""

    def __init__(self, path: str | Path, cause: str | None = None):
        self.path = str(path)
        self.cause = cause if cause is not None else str(path)
        super().__init__(f"{path}: {cause}" if cause is not None else str(path))


@dataclass
class DecodedVideo:
    """All frames of one video, decoded but not yet converted to RGB."""

    path: Path
    frames: list  # av.VideoFrame, in presentation order
    # One converter for all frames of the video: PyAV's per-frame `to_ndarray(format=...)` sets up a
    # new colour converter for every frame, which doubles the cost of converting one.
    _reformatter: VideoReformatter = field(default_factory=VideoReformatter, repr=False, compare=False)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def height(self) -> int:
        return self.frames[0].height

    @property
    def width(self) -> int:
        return self.frames[0].width

    def rgb(self, frame_idx: Sequence[int], box: Crop | None = None) -> np.ndarray:
        """Frames at `frame_idx` (repeats allowed) as (len(frame_idx), H, W, 3) uint8 RGB; only the
        pixels inside `box` when one is given: (len(frame_idx), box.height, box.width, 3)."""
        frame_idx = [int(i) for i in frame_idx]
        bad = [i for i in frame_idx if not 0 <= i < self.num_frames]
        if bad:
            raise VideoDecodeError(
                self.path,
                f"frame index {bad[0]} out of range: the video has {self.num_frames} frames "
                f"(valid indices 0..{self.num_frames - 1})",
            )
        rows, cols = (slice(None), slice(None)) if box is None else box.slices
        height, width = (self.height, self.width) if box is None else (box.height, box.width)
        out = np.empty((len(frame_idx), height, width, 3), dtype=np.uint8)
        converted: dict[int, np.ndarray] = {}
        for k, i in enumerate(frame_idx):
            if i not in converted:
                converted[i] = _frame_to_rgb(self.frames[i], self._reformatter)[rows, cols]
            out[k] = converted[i]
        return out


def _frame_to_rgb(frame, reformatter: VideoReformatter) -> np.ndarray:
    if frame.format.name == "gbrp":
        # PyAV returns planar RGB (lossless VP9/H.264 RGB) already packed as (H, W, 3) in R, G, B order,
        # without the cost of a colour-space conversion.
        return frame.to_ndarray()
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def decode_video(path: str | Path) -> DecodedVideo:
    """Decode every frame of the first video stream of `path` in one pass (no RGB conversion yet)."""
    path = Path(path)
    if not path.exists():
        raise VideoDecodeError(path, "file does not exist")
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory, expected a video file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except _DECODE_ERRORS as e:
        raise VideoDecodeError(path, f"not a readable video container ({e})") from e
    try:
        if not container.streams.video:
            raise VideoDecodeError(path, "the file holds no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        frames = []
        try:
            for frame in container.decode(stream):
                frames.append(frame)
        except _DECODE_ERRORS as e:
            raise VideoDecodeError(
                path, f"corrupt or truncated video stream: decoding failed after {len(frames)} frames ({e})"
            ) from e
        if not frames:
            raise VideoDecodeError(path, "corrupt or truncated video stream: no frame could be decoded")
        _check_complete(path, container, stream, frames)
        return DecodedVideo(path=path, frames=frames)
    finally:
        container.close()


def _check_complete(path: Path, container, stream, frames: list) -> None:
    """Raise if the decoded frames cover clearly less time than the container declares."""
    if container.duration is None or frames[-1].time is None:
        return
    declared = container.duration / av.time_base
    rate = stream.average_rate or stream.guessed_rate
    interval = 1.0 / float(rate) if rate else declared / max(len(frames), 1)
    covered = frames[-1].time + interval
    slack = max(_TRUNCATION_SLACK_FRAMES * interval, _TRUNCATION_SLACK_FRACTION * declared)
    if covered < declared - slack:
        raise VideoDecodeError(
            path,
            f"corrupt or truncated video stream: decoded {len(frames)} frames covering {covered:.2f} s "
            f"of the {declared:.2f} s the container declares",
        )


def count_frames(path: str | Path) -> int:
    """Number of frames in the first video stream of `path` (decoded, not taken from the header)."""
    return decode_video(path).num_frames


def read_frames(path: str | Path, frame_idx: Sequence[int]) -> np.ndarray:
    """Frames `frame_idx` of `path` (repeats allowed) as (len(frame_idx), H, W, 3) uint8 RGB."""
    return decode_video(path).rgb(frame_idx)


def temporary_path(path: str | Path) -> Path:
    """Where `write_video` writes `path` before renaming it: `.<name>.tmp-<pid><suffix>` beside it.

    The process id keeps two processes writing the same file apart; the container's suffix stays last,
    so PyAV picks the format from it."""
    return paths.temporary_path(path, Path(path).suffix)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int = 12,
    lossless: bool = False,
    crf: int = 32,
) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames to `path`: VP9 for .webm, H.264 for .mp4, and for .avi
    MPEG-4 part 2 (as HMDB51's XviD files; fixed quantiser 2, `crf` not used) or, lossless, H.264 RGB.

    `lossless=True` stores RGB exactly (VP9 lossless in planar RGB; H.264 through libx264rgb with
    qp 0), so decoding returns the very same pixels. Lossy files are yuv420p: H.264 and MPEG-4 need
    even sizes there, VP9 does not (SSv2 itself has 427x240 videos).
    Written to a temporary name of this process (`temporary_path`) and renamed, so a killed writer
    never leaves a half file behind and two processes writing the same file never meet.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: expected frames (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    num_frames, height, width, _ = frames.shape
    suffix = path.suffix.lower()
    if suffix == ".webm":
        codec, fmt = "libvpx-vp9", "webm"
        pix_fmt = "gbrp" if lossless else "yuv420p"
        options = {"deadline": "realtime", "cpu-used": "8", "row-mt": "0"}
        options.update({"lossless": "1"} if lossless else {"crf": str(crf), "b": "0"})
    elif suffix == ".mp4" or (suffix == ".avi" and lossless):
        fmt = "mp4" if suffix == ".mp4" else "avi"
        codec, pix_fmt = ("libx264rgb", "rgb24") if lossless else ("libx264", "yuv420p")
        options = {"preset": "ultrafast", "qp": "0"} if lossless else {"preset": "veryfast", "crf": str(crf)}
    elif suffix == ".avi":
        fmt, codec, pix_fmt = "avi", "mpeg4", "yuv420p"
        options = {}
    else:
        raise ValueError(f"{path}: unknown video suffix {suffix!r}, expected .webm (VP9), .mp4 (H.264) or .avi")
    if codec in ("libx264", "mpeg4") and (height % 2 or width % 2):
        raise ValueError(f"{path}: lossy {codec} needs even frame sizes, got {height}x{width}")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    container = av.open(str(tmp), mode="w", format=fmt)
    try:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options
        stream.codec_context.thread_count = 1
        if codec == "mpeg4":
            stream.codec_context.qscale = 2  # a fixed quantiser (crf is VP9's and H.264's)
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    except BaseException:
        container.close()
        tmp.unlink(missing_ok=True)
        raise
    container.close()
    tmp.replace(path)
    return path

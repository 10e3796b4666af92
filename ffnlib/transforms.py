"""The spatial side of a sample: one crop shared by every frame, resize; and the one normalisation.

Frames come in as (T, C, H, W) uint8 RGB tensors and leave as (T, C, frame_size, frame_size) uint8
(`ClipTransform.spatial`). T is any number of frames: the frames of every clip of a sample go through
one call, so they all share **one** spatial draw. There is no horizontal flip
(Something-Something has classes such as "pushing something from left to right").

Train (the official TSM `GroupMultiScaleCrop(frame_size, [1, .875, .75, .66])`, more_fix_crop on):
crop sides are `int(min(H, W) * scale)` for each scale; a (crop_h, crop_w) pair is drawn uniformly
among those whose scale indices differ by at most `max_distort` (1); then a position is drawn
uniformly among 13 fixed offsets (corners, centre, edge centres, quarter points on a grid of steps
`(H - crop_h) // 4`, `(W - crop_w) // 4`); the crop is resized to frame_size x frame_size (the
aspect ratio may change). Unlike the official code, crop sides within 3 px of frame_size are not
snapped to frame_size: the sides are exactly `int(min(H, W) * scale)`.

Test (the official `GroupScale(resize_size)` + `GroupCenterCrop(frame_size)`): resize the shorter
side to resize_size (the longer side to `int(resize_size * long / short)`), then take the centre
frame_size x frame_size square.

A sample's frames are transformed once as uint8 (`ClipTransform.spatial`), then `to_clips` gathers
each clip from them and moves channels first: (U, C, S, S) uint8 -> [(C, T_i, S, S) uint8]. The clips
stay uint8 through the data loader; `normalize` (ImageNet mean and std) turns a clip or a whole batch
into the model's float32 input where it runs, on the device in training and evaluation.
`ClipTransform.apply` crops, resizes and normalises in one call, with the same `normalize`.

Resizing is bilinear with antialiasing (`torch.nn.functional.interpolate`) done on uint8 in
channels-last layout, which is an order of magnitude faster on a CPU than on float32 and rounds like
the PIL resize of the official pipeline. No torchvision, no PIL.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SCALES = (1.0, 0.875, 0.75, 0.66)
MAX_DISTORT = 1


@dataclass(frozen=True)
class Crop:
    """A box in frame pixels: rows `top : top + height`, columns `left : left + width`."""

    top: int
    left: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns): index an (H, W, ...) array, or a tensor's last two dims, with them."""
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4:
        got = f"{type(frames).__name__} {getattr(frames, 'dtype', '')} {tuple(getattr(frames, 'shape', ()))}"
        raise ValueError(f"expected frames as a (T, C, H, W) uint8 tensor, got {got}")


def crop_size_pairs(
    height: int, width: int, scales: Sequence[float] = SCALES, max_distort: int = MAX_DISTORT
) -> list[tuple[int, int]]:
    """Every (crop_h, crop_w) the multi-scale crop may draw for an H x W frame, each equally likely."""
    base_size = min(height, width)
    sizes = [max(1, int(base_size * s)) for s in scales]
    return [
        (crop_h, crop_w)
        for i, crop_h in enumerate(sizes)
        for j, crop_w in enumerate(sizes)
        if abs(i - j) <= max_distort
    ]


def fixed_offsets(height: int, width: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
    """The 13 (top, left) positions of a crop_h x crop_w box in an H x W frame, official order.

    Corners, centre, the four edge centres, then the four quarter points, on a grid of steps
    `(H - crop_h) // 4` and `(W - crop_w) // 4` (so positions may coincide on small margins).
    """
    if not (0 < crop_h <= height and 0 < crop_w <= width):
        raise ValueError(f"a {crop_h}x{crop_w} crop does not fit in a {height}x{width} frame")
    h, w = (height - crop_h) // 4, (width - crop_w) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2),  # (x, y) in steps: corners, centre
            (0, 2), (4, 2), (2, 4), (2, 0),  # centre left, centre right, lower centre, upper centre
            (1, 1), (3, 1), (1, 3), (3, 3)]  # the quarter points
    return [(y * h, x * w) for x, y in grid]


def sample_multiscale_crop(
    height: int,
    width: int,
    rng: np.random.Generator,
    scales: Sequence[float] = SCALES,
    max_distort: int = MAX_DISTORT,
) -> Crop:
    """One multi-scale corner crop for an H x W frame: a size pair, then one of 13 offsets, from `rng`."""
    pairs = crop_size_pairs(height, width, scales, max_distort)
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    offsets = fixed_offsets(height, width, crop_h, crop_w)
    top, left = offsets[int(rng.integers(len(offsets)))]
    return Crop(top, left, crop_h, crop_w)


def centre_crop_box(height: int, width: int, frame_size: int) -> Crop:
    """The centred frame_size x frame_size box of an H x W frame (rounding as torchvision's CenterCrop)."""
    if frame_size > min(height, width):
        raise ValueError(f"a centre crop of {frame_size} px does not fit in a {height}x{width} frame")
    return Crop(int(round((height - frame_size) / 2)), int(round((width - frame_size) / 2)), frame_size, frame_size)


def crop(frames: torch.Tensor, box: Crop) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, box.height, box.width): a view, no copy."""
    return frames[(..., *box.slices)]


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(T, C, H, W) uint8 -> (T, C, height, width) uint8, bilinear with antialiasing."""
    _check_frames(frames)
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    frames = frames.contiguous(memory_format=torch.channels_last)  # the fast uint8 kernel wants NHWC
    return F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


def resize_shorter_side(frames: torch.Tensor, resize_size: int) -> torch.Tensor:
    """(T, C, H, W) uint8 -> uint8 with min(H, W) == resize_size and the aspect ratio kept."""
    height, width = frames.shape[-2:]
    if height <= width:
        return resize(frames, resize_size, int(resize_size * width / height))
    return resize(frames, int(resize_size * height / width), resize_size)


def _scale_shift(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(C,) float32 `scale`, `shift` such that `x * scale - shift == (x / 255 - mean) / std`."""
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    return 1.0 / (255.0 * std_t), mean_t / std_t


def normalize(pixels: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD, *,
              channel_dim: int = -4) -> torch.Tensor:
    """uint8 pixels in 0..255 -> float32 `(x / 255 - mean) / std` per channel, where `pixels` are.

    The one normalisation of the workbook: training and evaluation call it on each batch once it is on
    the device (`ffnlib.train.data.model_input`), notebooks and figures on clips. Layouts: a clip
    (C, T, H, W) or a batch (B, C, T, H, W), channels at dim -4 (the default); frames (T, C, H, W)
    with `channel_dim=-3`. Two elementwise passes over the whole tensor, the product into a new float32
    tensor, then the shift in place: the uint8 values are exact in float32 and each op rounds once, so
    the result is the same to the bit on any device and for any batching of the same pixels.
    """
    if not isinstance(pixels, torch.Tensor) or pixels.dtype != torch.uint8 or pixels.ndim < -channel_dim:
        got = f"{type(pixels).__name__} {getattr(pixels, 'dtype', '')} {tuple(getattr(pixels, 'shape', ()))}"
        raise ValueError(f"normalize expects uint8 pixels with channels at dim {channel_dim} (a clip "
                         f"(C, T, H, W), a batch (B, C, T, H, W), or frames (T, C, H, W) with channel_dim=-3), "
                         f"got {got}")
    if pixels.shape[channel_dim] != len(mean):
        raise ValueError(f"expected {len(mean)} colour channels in dim {channel_dim} of {tuple(pixels.shape)}")
    scale, shift = _scale_shift_on(str(pixels.device), tuple(mean), tuple(std))  # (C,), (C,)
    trailing = (1,) * (-channel_dim - 1)
    scale, shift = scale.view(-1, *trailing), shift.view(-1, *trailing)  # (C, 1, ..., 1): broadcast after C
    return torch.mul(pixels, scale).sub_(shift)  # float32, the layout of `pixels`


@functools.lru_cache(maxsize=16)
def _scale_shift_on(device: str, mean: tuple, std: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """`_scale_shift` on `device`, copied there once: a copy from pageable host memory at every batch
    would make the host wait for the device's queue each time."""
    return tuple(v.to(device) for v in _scale_shift(mean, std))


def denormalize(clip: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """A clip (C, T, H, W) as displayable frames (T, H, W, 3) uint8 RGB: a uint8 clip (what the dataset
    views give) only has its channels moved last; a normalised float clip (what the model sees) is
    mapped back to pixels first."""
    if clip.ndim != 4 or clip.shape[0] != len(mean):
        raise ValueError(f"expected a clip (C, T, H, W) with C = {len(mean)}, got {tuple(clip.shape)}")
    if clip.dtype == torch.uint8:
        return clip.detach().cpu().permute(1, 2, 3, 0).numpy()  # (T, H, W, C)
    scale, shift = (v.view(-1, 1, 1, 1) for v in _scale_shift(mean, std))  # (C, 1, 1, 1) each
    values = ((clip.detach().float().cpu() + shift) / scale).round().clamp(0, 255)  # (C, T, H, W)
    return values.to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (T, H, W, C)


def resize_centre_crop(frames: torch.Tensor, frame_size: int, resize_size: int) -> torch.Tensor:
    """(T, C, H, W) uint8 -> (T, C, frame_size, frame_size) uint8: shorter side to resize_size, centre crop."""
    _check_frames(frames)
    if resize_size < frame_size:
        raise ValueError(f"resize_size ({resize_size}) must be at least frame_size ({frame_size})")
    resized = resize_shorter_side(frames, resize_size)
    return crop(resized, centre_crop_box(resized.shape[-2], resized.shape[-1], frame_size))


def to_clips(frames: torch.Tensor, positions: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Clips gathered from transformed frames: (U, C, S, S) uint8 -> [(C, T_i, S, S) uint8, ...].

    Clip i is `frames[positions[i]]` with channels moved first, still uint8 (a quarter of float32's
    bytes through the loader; `normalize` runs on the device, once per batch). The U frames move their
    channels first once, in one copy (the resized frames are channels-last in memory); each clip is
    then a gather of whole planes, and a clip of all U frames in order is that copy itself.
    """
    _check_frames(frames)
    planes = frames.permute(1, 0, 2, 3).contiguous()  # (C, U, S, S)
    num_frames = planes.shape[1]
    clips, whole_used = [], False
    for p in positions:
        p = torch.as_tensor(np.asarray(p, dtype=np.int64))  # (T_i,)
        if not whole_used and len(p) == num_frames and torch.equal(p, torch.arange(num_frames)):
            clips.append(planes)  # (C, U, S, S): no second copy
            whole_used = True
        else:
            clips.append(planes.index_select(1, p))  # (C, T_i, S, S)
    return clips


@dataclass(frozen=True)
class ClipTransform:
    """The spatial transform of a dataset view: `transform(frames, rng)` -> (T, C, S, S) float32.

    `train=True`: multi-scale corner crop drawn from `rng`, resized to frame_size x frame_size.
    `train=False`: resize the shorter side to resize_size, centre crop frame_size (rng unused).
    All T frames share one draw. `draw` and `apply` split the call in two, so that a caller can
    show or reuse the crop.
    """

    train: bool = True
    frame_size: int = 224
    resize_size: int = 256
    scales: tuple[float, ...] = SCALES
    max_distort: int = MAX_DISTORT

    def __post_init__(self):
        if self.frame_size < 1 or self.resize_size < self.frame_size:
            raise ValueError(
                f"need 1 <= frame_size <= resize_size, got frame_size={self.frame_size}, "
                f"resize_size={self.resize_size}"
            )

    def draw(self, height: int, width: int, rng: np.random.Generator | None = None) -> Crop | None:
        """The crop for H x W frames: a multi-scale crop from `rng` in train mode, None in test mode."""
        if not self.train:
            return None
        if rng is None:
            raise ValueError("the train transform needs an explicit numpy Generator (rng=...)")
        return sample_multiscale_crop(height, width, rng, self.scales, self.max_distort)

    def spatial(self, frames: torch.Tensor, box: Crop | None) -> torch.Tensor:
        """(T, C, H, W) uint8 -> (T, C, frame_size, frame_size) uint8: the crop and resize, not normalised."""
        if self.train and box is None:
            raise ValueError("the train transform needs a crop box (from draw)")
        return self.spatial_cropped(crop(frames, box) if self.train else frames)  # test mode: no box

    def spatial_cropped(self, frames: torch.Tensor) -> torch.Tensor:
        """`spatial` for frames already cut to the drawn box (train) or whole (test, where the box is
        None): (T, C, h, w) uint8 -> (T, C, frame_size, frame_size) uint8. The dataset views cut the box
        while converting frames to RGB, which saves copying the rest of each frame twice."""
        _check_frames(frames)
        if not self.train:
            return resize_centre_crop(frames, self.frame_size, self.resize_size)
        return resize(frames, self.frame_size, self.frame_size)

    def apply(self, frames: torch.Tensor, box: Crop | None) -> torch.Tensor:
        """(T, C, H, W) uint8 -> (T, C, frame_size, frame_size) float32 normalised, with the drawn `box`."""
        return normalize(self.spatial(frames, box), channel_dim=-3)

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return self.apply(frames, self.draw(frames.shape[-2], frames.shape[-1], rng))

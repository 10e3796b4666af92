"""Temporal shift (TSM): a pure function and a parameter-free module.

Layout: frames are stacked in the batch dimension, (N*T, C, H, W) with the T frames of each video
consecutive, which is how a 2D ResNet sees a clip. With fold = C // fold_div, frame t takes

    channels [0, fold)        from frame t+1   (zero for the last frame)
    channels [fold, 2 fold)   from frame t-1   (zero for the first frame)

and keeps the other channels. No parameters; any T >= 1 (T = 1 zeroes the shifted channels).

The gradient of a shift is the opposite shift, so autograd goes through `_Shift`, which builds one
output tensor in both directions: a copy of its input with the two shifted folds overwritten
(slicing through autograd would allocate and add three full-size zero tensors per backward: a fifth
of a small network's step on a CPU).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _shift_folds(x: Tensor, fold: int, reverse: bool) -> Tensor:
    """x (N, T, C, H, W): fold 0 from t+1 and fold 1 from t-1 (swapped when `reverse`), zero padded."""
    # A copy, then the two folds overwritten; the copy keeps the input's strides (channels_last stays
    # channels_last). Not torch.empty_like with every part written: torch.compile (inductor, CPU) gives
    # NaN for that at T = 2 in a training graph (tests/test_compile.py).
    out = x.clone()
    first, second = (slice(0, fold), slice(fold, 2 * fold))
    if reverse:
        first, second = second, first
    out[:, :-1, first] = x[:, 1:, first]  # frame t <- frame t+1
    out[:, -1:, first] = 0
    out[:, 1:, second] = x[:, :-1, second]  # frame t <- frame t-1
    out[:, :1, second] = 0
    return out


class _Shift(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, fold: int, reverse: bool) -> Tensor:
        ctx.fold, ctx.reverse = fold, reverse
        return _shift_folds(x, fold, reverse)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Shift.apply(grad, ctx.fold, not ctx.reverse), None, None


def temporal_shift(x: Tensor, num_frames: int, fold_div: int = 8) -> Tensor:
    """Shift `x` (N*T, C, H, W) along time, T = `num_frames`; returns a new tensor of the same shape."""
    if x.dim() != 4:
        raise ValueError(f"temporal_shift expects frames (N*T, C, H, W), got shape {tuple(x.shape)}")
    if num_frames < 1 or fold_div < 1:
        raise ValueError(f"temporal_shift needs num_frames >= 1 and fold_div >= 1, "
                         f"got num_frames={num_frames}, fold_div={fold_div}")
    nt, c, h, w = x.shape
    if nt % num_frames:
        raise ValueError(f"temporal_shift: {nt} frames in the batch is not a multiple of "
                         f"num_frames={num_frames} (frames are laid out (N*T, C, H, W))")
    x = x.reshape(nt // num_frames, num_frames, c, h, w)  # (N*T, C, H, W) -> (N, T, C, H, W)
    out = _Shift.apply(x, c // fold_div, False)
    return out.reshape(nt, c, h, w)  # (N, T, C, H, W) -> (N*T, C, H, W)


class TemporalShift(nn.Module):
    """`temporal_shift` as a module; T is given at call time, so one network serves any T."""

    def __init__(self, fold_div: int = 8):
        super().__init__()
        self.fold_div = fold_div

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        return temporal_shift(x, num_frames, self.fold_div)

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}"

"""Compute per clip, counted on the meta device (no memory, no arithmetic, any size).

The unit is multiply-accumulates (MACs) of the convolutions and the fc, the convention behind the
"GFLOPs" of ResNet papers and of FFN (TSM-R50 at 224: 4.1 G per frame, so 16.4 / 32.7 / 65.4 G per
clip at 4 / 8 / 16 frames). BatchNorm, ReLU, pooling, the shift and the residual additions are not
counted. `torch.utils.flop_counter` counts 2 FLOPs per multiply-add; the figures here are half that.
FFN's adaconv is counted as the depthwise 1x1 conv of the paper (C*H*W per frame and block, for
bottleneck and basic blocks alike: +0.14% for ResNet-50), although the code folds it into conv1's
weight, where it costs next to nothing. What runs is what is counted: an FFN without weight sharing
runs one of its networks per clip (one TSM's MACs), an `Ensemble` runs every member (their sum).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .resnet import TSMBlock


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` on the meta device, in eval mode (for shape and cost questions)."""
    meta = copy.deepcopy(model).to("meta")
    return meta.eval()


def _meta_model(model_or_name: nn.Module | str, num_classes: int, **kwargs) -> nn.Module:
    if isinstance(model_or_name, nn.Module):
        if kwargs:
            raise ValueError(f"model keywords {sorted(kwargs)} only apply when a model name is given")
        return meta_copy(model_or_name)
    from .registry import create_model

    with torch.device("meta"):
        return create_model(model_or_name, num_classes, **kwargs).eval()


def flops(model_or_name: nn.Module | str, num_frames: int | Sequence[int], frame_size: int = 224,
          num_classes: int = 174, **kwargs) -> float:
    """Multiply-accumulates of one clip of `num_frames` frames of `frame_size`^2 pixels.

    `model_or_name`: a model (copied to the meta device, the original is untouched) or a name for
    `create_model` with `num_classes` and `kwargs`. For an FFN, an int T counts the inference
    forward (the branch nearest to T, adaconv included); a sequence of counts, e.g. (4, 8, 16),
    counts the multi-clip training forward (one clip per count). An `Ensemble` takes an int T: the
    sum of its members' MACs at T.
    """
    model = _meta_model(model_or_name, num_classes, **kwargs)
    in_channels = getattr(model, "in_channels", None)
    if in_channels is None:
        raise ValueError(f"flops: {type(model).__name__} does not say its input channels (in_channels)")

    def clip(t: int) -> torch.Tensor:
        return torch.empty(1, in_channels, int(t), frame_size, frame_size, device="meta")  # (B, C, T, H, W)

    x = clip(num_frames) if isinstance(num_frames, int) else [clip(t) for t in num_frames]
    adaconv_macs = []
    for block in model.modules():
        if isinstance(block, TSMBlock) and block.adaconv is not None:  # C*H*W per frame: the block input
            block.register_forward_hook(lambda _m, inputs, _out: adaconv_macs.append(inputs[0].numel()))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 + sum(adaconv_macs)

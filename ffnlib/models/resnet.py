"""TSM-ResNet: a 2D ResNet whose residual branches start with a temporal shift.

Input clips are (B, C, T, H, W) float; inside, frames are stacked as (B*T, C, H, W); each frame is
pooled, dropped out and classified by one shared fc, and the logits are averaged over T:
(B, classes). The block type (`block="bottleneck"` or `"basic"`, as timm's `block=` argument), depth
and width are parameters, so one trunk builds ResNet-18/50/101 for SSv2 on a GPU and networks of a
hundred thousand parameters for the built-in data on a CPU (`ARCHITECTURES` names them).

Parameter names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0/1`,
`fc`...), so a torchvision ResNet state dict of the same depth loads without renaming. The temporal
shift has no parameters and sits in the block as its own module (`shift`), not wrapped around
`conv1`; `shift_every=n` keeps it in every n-th block of each stage only (None in the others).

The blocks also carry what FFN needs (see `ffnlib.models.ffn`): a BatchNorm may be a `BranchNorm`
(one private BN per trained frame count) and a block may hold one depthwise 1x1 `adaconv` per branch.
With one branch and no adaconv they are plain TSM blocks.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .shift import TemporalShift

NormLayer = Callable[[int], nn.Module]

# The named architectures (`create_model("tsm_<name>")`, `arch: <name>` in a training config).
# resnet18/50/101 are torchvision's (their ImageNet weights load); small and medium are CPU networks.
ARCHITECTURES: dict[str, dict] = {
    "resnet18": dict(block="basic", layers=(2, 2, 2, 2), width=64, stem_channels=64, stem_kernel=7,
                     stem_stride=2, stem_pool=True, zero_init_residual=False),
    "resnet50": dict(block="bottleneck", layers=(3, 4, 6, 3), width=64, stem_channels=64, stem_kernel=7,
                     stem_stride=2, stem_pool=True, zero_init_residual=False),
    "resnet101": dict(block="bottleneck", layers=(3, 4, 23, 3), width=64, stem_channels=64, stem_kernel=7,
                      stem_stride=2, stem_pool=True, zero_init_residual=False),
    "small": dict(block="bottleneck", layers=(1, 1, 1, 1), width=8, stem_channels=32, stem_kernel=3,
                  stem_stride=2, stem_pool=False, zero_init_residual=True),
    "medium": dict(block="bottleneck", layers=(2, 2, 2, 2), width=16, stem_channels=32, stem_kernel=3,
                   stem_stride=2, stem_pool=False, zero_init_residual=True),
}
ARCH_KEYS = ("block", "layers", "width", "stem_channels", "stem_kernel", "stem_stride", "stem_pool")


class BranchNorm(nn.ModuleList):
    """One normalisation layer per branch; `norm(x, branch)` uses copy `branch` (keys `<name>.<branch>.*`)."""

    def __init__(self, num_features: int, num_branches: int, norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__([norm_layer(num_features) for _ in range(num_branches)])

    def forward(self, x: Tensor, branch: int) -> Tensor:
        return self[branch](x)


def make_norm(norm_layer: NormLayer, num_features: int, num_branches: int) -> nn.Module:
    """A plain `norm_layer(num_features)` for one branch, a `BranchNorm` for several."""
    if num_branches == 1:
        return norm_layer(num_features)
    return BranchNorm(num_features, num_branches, norm_layer)


def apply_norm(norm: nn.Module, x: Tensor, branch: int) -> Tensor:
    return norm(x, branch) if isinstance(norm, BranchNorm) else norm(x)


class AdaConv(nn.Conv2d):
    """FFN's weight alteration: a depthwise 1x1 conv (weight (C, 1, 1, 1), no bias) added to its input.

    `forward(x)` returns `x + conv(x)` for x (N, C, H, W). A depthwise 1x1 conv is a per-channel
    scale, so `x + conv(x) = x * (1 + w)`; the conv that follows (conv1: 1x1 in a bottleneck, 3x3 in
    a basic block) is linear in its input channels, so the scale folds into its weight:
    `conv1(x * (1 + w)) = conv2d(x, W1 * (1 + w))` (zero padding stays zero). The blocks use
    `conv_through`, which costs a (P, C, k, k) product instead of passes over the activation. The
    numbers are the same, up to rounding, and exactly the plain conv1 when w = 0.
    """

    def __init__(self, channels: int):
        super().__init__(channels, channels, 1, groups=channels, bias=False)

    def scale(self) -> Tensor:
        return 1 + self.weight.view(1, -1, 1, 1)  # (C, 1, 1, 1) -> (1, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale().to(x.dtype)  # x + depthwise conv(x); autocast keeps x's dtype

    def fold_into(self, conv: nn.Conv2d) -> Tensor:
        """The weight (P, C, k, k) of `conv(x + self(x))` seen as one conv of x."""
        return conv.weight * self.scale()  # (P, C, k, k) * (1, C, 1, 1)

    def conv_through(self, conv: nn.Conv2d, x: Tensor) -> Tensor:
        """`conv(x + self(x))` for x (N, C, H, W), as one conv with the folded weight."""
        return F.conv2d(x, self.fold_into(conv), conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class TSMBlock(nn.Module):
    """What both residual blocks share: the shift and the adapters before conv1, the shortcut.

    `forward(x, num_frames, branch)`: x is (N*T, C, H, W) with T = `num_frames`; the identity path is
    not shifted ("blockres"). With `shift` False the block has no shift (`self.shift` is None: the
    official ResNet-101 TSM shifts every other block). With `num_adaconvs` > 0, conv1 sees its input
    altered as `out + adaconv[branch](out)` (a depthwise 1x1 conv after the shift, folded into conv1:
    see `AdaConv`). Norms come in `num_norms` copies (a `BranchNorm` when more than one); `branch`
    picks the copies. Subclasses build their modules in torchvision's order (the random init draws
    follow it) and name their last norm `last_norm` (zero-initialised by `zero_init_residual`).
    """

    expansion = 1

    def _shift_and_adapters(self, inplanes: int, fold_div: int, shift: bool, num_adaconvs: int) -> None:
        self.shift = TemporalShift(fold_div) if shift else None
        self.adaconv = nn.ModuleList(AdaConv(inplanes) for _ in range(num_adaconvs)) if num_adaconvs else None

    def first_conv(self, x: Tensor, num_frames: int, branch: int) -> Tensor:
        """conv1 of the (shifted, altered) block input x (N*T, C, H, W)."""
        out = x if self.shift is None else self.shift(x, num_frames)  # channels moved along T
        if self.adaconv is None:
            return self.conv1(out)
        return self.adaconv[branch].conv_through(self.conv1, out)  # conv1(out + adaconv(out))

    def shortcut(self, x: Tensor, branch: int) -> Tensor:
        if self.downsample is None:
            return x
        return apply_norm(self.downsample[1], self.downsample[0](x), branch)


class Bottleneck(TSMBlock):
    """ResNet v1.5 bottleneck (1x1, 3x3 with the stride, 1x1 to 4x planes) with the shift on the
    residual branch, before conv1 ("blockres"); see `TSMBlock`."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm_layer: NormLayer = nn.BatchNorm2d, fold_div: int = 8, num_norms: int = 1,
                 num_adaconvs: int = 0, shift: bool = True):
        super().__init__()
        out_planes = planes * self.expansion
        self._shift_and_adapters(inplanes, fold_div, shift, num_adaconvs)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = make_norm(norm_layer, planes, num_norms)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = make_norm(norm_layer, planes, num_norms)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = make_norm(norm_layer, out_planes, num_norms)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample  # nn.Sequential(conv 1x1, norm): keys downsample.0 / downsample.1
        self.stride = stride

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: Tensor, num_frames: int, branch: int = 0) -> Tensor:
        out = self.relu(apply_norm(self.bn1, self.first_conv(x, num_frames, branch), branch))
        out = self.relu(apply_norm(self.bn2, self.conv2(out), branch))
        out = apply_norm(self.bn3, self.conv3(out), branch)
        return self.relu(out + self.shortcut(x, branch))


class BasicBlock(TSMBlock):
    """ResNet-18/34 basic block (3x3 with the stride, 3x3), expansion 1, with the shift on the residual
    branch, before conv1 ("blockres", as the bottleneck; the FFN code's BasicBlock); see `TSMBlock`."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm_layer: NormLayer = nn.BatchNorm2d, fold_div: int = 8, num_norms: int = 1,
                 num_adaconvs: int = 0, shift: bool = True):
        super().__init__()
        self._shift_and_adapters(inplanes, fold_div, shift, num_adaconvs)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm_layer, planes, num_norms)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm_layer, planes, num_norms)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample  # nn.Sequential(conv 1x1, norm): keys downsample.0 / downsample.1
        self.stride = stride

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: Tensor, num_frames: int, branch: int = 0) -> Tensor:
        out = self.relu(apply_norm(self.bn1, self.first_conv(x, num_frames, branch), branch))
        out = apply_norm(self.bn2, self.conv2(out), branch)
        return self.relu(out + self.shortcut(x, branch))


BLOCKS: dict[str, type[TSMBlock]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def block_name(block: str | type) -> str:
    """The name ("basic" or "bottleneck") of a block given by name or class; a ValueError otherwise."""
    for name, cls in BLOCKS.items():
        if block == name or block is cls:
            return name
    raise ValueError(f"block must be one of {sorted(BLOCKS)} (or BasicBlock / Bottleneck), got {block!r}")


def check_clip(x, in_channels: int, where: str) -> None:
    """Raise a ValueError unless `x` is a float clip (B, C, T, H, W) with C = `in_channels`."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{where}: expected a clip tensor (B, C={in_channels}, T, H, W), got {type(x).__name__}")
    if x.dim() != 5 or x.shape[1] != in_channels or min(x.shape) < 1:
        raise ValueError(f"{where}: expected a clip (B, C={in_channels}, T, H, W), got shape {tuple(x.shape)}"
                         + (" (was it laid out (B, T, C, H, W)?)" if x.dim() == 5 and x.shape[2] == in_channels
                            else ""))
    if not x.is_floating_point():
        raise ValueError(f"{where}: expected a float clip, got dtype {x.dtype} (normalise the frames first)")


class ResNetTSMBase(nn.Module):
    """What TSM-ResNet and FFN-ResNet share: the stem, the four stages, the head and the init.

    `num_norms` copies of every norm and `num_adaconvs` adapters per block (0: none); the public
    classes are `TSMResNet` (one norm, no adapter) and `ffnlib.models.FFNResNet`.
    """

    def __init__(self, num_classes: int, *, layers: Sequence[int], width: int, stem_channels: int,
                 stem_kernel: int, stem_stride: int, stem_pool: bool, in_channels: int, dropout: float,
                 fold_div: int, zero_init_residual: bool, norm_layer: NormLayer,
                 num_norms: int, num_adaconvs: int, block: str | type = "bottleneck", shift_every: int = 1):
        super().__init__()
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be 4 block counts >= 1, got {layers}")
        if min(num_classes, width, stem_channels, stem_kernel, stem_stride, in_channels, fold_div) < 1:
            raise ValueError("num_classes, width, stem_channels, stem_kernel, stem_stride, in_channels and "
                             "fold_div must be positive")
        if isinstance(shift_every, bool) or not isinstance(shift_every, int) or shift_every < 1:
            raise ValueError(f"shift_every must be an int >= 1 (1: a shift in every block), got {shift_every!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.fold_div = fold_div
        self.shift_every = shift_every
        self.arch = dict(block=block_name(block), layers=layers, width=width, stem_channels=stem_channels,
                         stem_kernel=stem_kernel, stem_stride=stem_stride, stem_pool=stem_pool)
        self._block = BLOCKS[self.arch["block"]]
        self._norm_layer = norm_layer
        self._num_norms = num_norms
        self._num_adaconvs = num_adaconvs

        # Stem: keys conv1 / bn1, as in torchvision.
        self.conv1 = nn.Conv2d(in_channels, stem_channels, stem_kernel, stride=stem_stride,
                               padding=stem_kernel // 2, bias=False)
        self.bn1 = make_norm(norm_layer, stem_channels, num_norms)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        self.inplanes = stem_channels
        self.layer1 = self._make_layer(width, layers[0], stride=1)
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.num_features = self.inplanes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

        for m in self.modules():  # torchvision's init (it also reaches adaconv, as in the official FFN code)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for block in self.blocks():
                norms = block.last_norm if isinstance(block.last_norm, BranchNorm) else [block.last_norm]
                for norm in norms:
                    nn.init.zeros_(norm.weight)
        nn.init.normal_(self.fc.weight, 0, 0.001)  # TSM's new fc
        nn.init.zeros_(self.fc.bias)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        out_planes = planes * self._block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, out_planes, 1, stride=stride, bias=False),
                                       make_norm(self._norm_layer, out_planes, self._num_norms))
        blocks = []
        for i in range(num_blocks):
            # shift_every=n: blocks 0, n, 2n... of each stage shift (the official TSM ResNet-101: n = 2)
            blocks.append(self._block(self.inplanes, planes, stride if i == 0 else 1,
                                      downsample if i == 0 else None, self._norm_layer, self.fold_div,
                                      self._num_norms, self._num_adaconvs, shift=i % self.shift_every == 0))
            self.inplanes = out_planes
        return nn.Sequential(*blocks)

    def blocks(self) -> list[TSMBlock]:
        """The residual blocks in order (8 in ResNet-18, 16 in ResNet-50, 33 in ResNet-101)."""
        return [b for layer in (self.layer1, self.layer2, self.layer3, self.layer4) for b in layer]

    def _features(self, x: Tensor, branch: int, shift_frames: int | None = None) -> Tensor:
        """Pooled per-frame features (B, T, D) of a checked clip x (B, C, T, H, W).

        `shift_frames` overrides the T the shift groups frames by (FFN's "official" shift mode).
        """
        b, c, t, h, w = x.shape
        shift_frames = t if shift_frames is None else shift_frames
        x = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B, C, T, H, W) -> (B*T, C, H, W)
        x = self.maxpool(self.relu(apply_norm(self.bn1, self.conv1(x), branch)))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = block(x, shift_frames, branch)
        x = self.avgpool(x).flatten(1)  # (B*T, D, h, w) -> (B*T, D)
        return x.reshape(b, t, -1)  # (B*T, D) -> (B, T, D)

    def head(self, features: Tensor) -> Tensor:
        """Per-frame dropout and fc on features (B, T, D), logits averaged over T: (B, classes)."""
        b, t, d = features.shape
        logits = self.fc(self.dropout(features.reshape(b * t, d)))  # (B*T, D) -> (B*T, classes)
        return logits.reshape(b, t, -1).mean(dim=1)  # (B, T, classes) -> (B, classes)


class TSMResNet(ResNetTSMBase):
    """TSM-ResNet: `model(x)` with x (B, C, T, H, W) float, any T, returns logits (B, num_classes).

    Architecture: `block` ("bottleneck", expansion 4, or "basic", expansion 1; or the class);
    `layers` blocks per stage; stage planes width, 2w, 4w, 8w (so the feature has 8*width*expansion
    channels); strides 1, 2, 2, 2. Stem: a `stem_kernel` conv with `stem_channels` outputs and stride
    `stem_stride`, BN, ReLU, then a 3x3 stride-2 max-pool when `stem_pool`. ResNet-50 is the default.
    `zero_init_residual` starts the last BN of every block at zero (off for the torchvision depths,
    as torchvision and the official TSM code). `shift_every`: 1 (default) shifts in every block, n
    in blocks 0, n, 2n... of each stage (2: the official TSM ResNet-101). Head: dropout `dropout` on
    each frame's pooled feature, one fc (N(0, 0.001), bias 0), mean of the logits over T.
    """

    def __init__(self, num_classes: int, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                 stem_channels: int = 64, stem_kernel: int = 7, stem_stride: int = 2, stem_pool: bool = True,
                 in_channels: int = 3, dropout: float = 0.5, fold_div: int = 8,
                 zero_init_residual: bool = False, norm_layer: NormLayer = nn.BatchNorm2d,
                 block: str | type = "bottleneck", shift_every: int = 1):
        super().__init__(num_classes, layers=layers, width=width, stem_channels=stem_channels,
                         stem_kernel=stem_kernel, stem_stride=stem_stride, stem_pool=stem_pool,
                         in_channels=in_channels, dropout=dropout, fold_div=fold_div,
                         zero_init_residual=zero_init_residual, norm_layer=norm_layer,
                         num_norms=1, num_adaconvs=0, block=block, shift_every=shift_every)

    def features(self, x: Tensor) -> Tensor:
        """Pooled per-frame features (B, T, D) of a clip (B, C, T, H, W)."""
        check_clip(x, self.in_channels, type(self).__name__)
        return self._features(x, branch=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

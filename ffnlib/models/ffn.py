"""FFN-ResNet (Frame Flexible Network): one TSM-ResNet, one sub-network per trained frame count.

The sub-networks ("branches", one per count in `frame_counts`, default 4, 8, 16) share every conv
and the fc, and keep private
  - every BatchNorm (stem `bn1`, `bn1/bn2/bn3` of each bottleneck or `bn1/bn2` of each basic block,
    the downsample BN): keys `<bn name>.<branch>.*`, branch 0 being the smallest count;
  - one depthwise 1x1 conv per block, `adaconv.<branch>` ("weight alteration"), applied after the
    shift, before conv1: `out = shift(x); out = out + adaconv(out)`.

Forward:
  - `model(x)`, x (B, C, T, H, W) any T: logits (B, classes) from the branch whose count is nearest
    to T, ties to the larger count (5 -> 4, 6 -> 8, 12 -> 16); the shift uses the real T.
  - `model([x4, x8, x16])`, one clip per trained count in any order (each T must be a trained count):
    a list of logits in the same order. This is the training forward; it works in eval mode too.

Ablations (the paper's Table 4): `private_bn=False` keeps one BN set shared by all counts,
`adaconv=False` drops the adapters. Both off gives a TSM-ResNet that is trained on several T.
`weight_sharing=False` (`ffn_resnet(...)`, `create_model("ffn_<arch>", ..., weight_sharing=False)`)
gives `UnsharedFFN`: one whole TSM-ResNet per count (own convs, BNs and fc, no adaconv), with the same
interface.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .resnet import NormLayer, ResNetTSMBase, TSMResNet, check_clip

ADACONV_INITS = ("paper", "official")
SHIFT_MODES = ("per_branch", "official")


def nearest_count(num_frames: int, frame_counts: Sequence[int]) -> int:
    """The count in `frame_counts` nearest to `num_frames`, ties going to the larger count."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return min(frame_counts, key=lambda count: (abs(count - num_frames), -count))


def _sorted_counts(frame_counts: Sequence[int]) -> tuple[int, ...]:
    counts = tuple(sorted(int(c) for c in frame_counts))
    if not counts or counts[0] < 1 or len(set(counts)) != len(counts):
        raise ValueError(f"frame_counts must be distinct positive ints, got {tuple(frame_counts)}")
    return counts


def _check_shift_mode(shift_mode: str) -> None:
    if shift_mode not in SHIFT_MODES:
        raise ValueError(f"shift_mode must be one of {SHIFT_MODES}, got {shift_mode!r}")


class FrameFlexible:
    """The interface both FFN variants share (a mixin before `nn.Module` in the bases): `frame_counts`,
    `branch_for(T)`, `model(x)` at any T through the nearest branch, `model([x4, x8, x16])` with one
    logits per clip. A subclass sets `frame_counts`, `shift_mode` and `in_channels`, and gives
    `_branch_logits(x, branch, shift_frames)`: logits (B, classes) of branch index `branch` on a
    checked clip x (B, C, T, H, W), the shift grouping frames by `shift_frames` (None: the real T).
    """

    frame_counts: tuple[int, ...]
    shift_mode: str
    in_channels: int

    def branch_for(self, num_frames: int) -> int:
        """The trained frame count whose branch serves clips of `num_frames` frames."""
        return nearest_count(num_frames, self.frame_counts)

    def _branch_index(self, count: int) -> int:
        # With shared BNs there is one norm copy (index 0), but adaconv is still per count.
        return self.frame_counts.index(count)

    def _branch_logits(self, x: Tensor, branch: int, shift_frames: int | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor | list[Tensor]:
        if isinstance(x, Tensor):
            check_clip(x, self.in_channels, type(self).__name__)
            return self._branch_logits(x, self._branch_index(self.branch_for(x.shape[2])))
        if not isinstance(x, (list, tuple)) or not x:
            raise ValueError(f"{type(self).__name__} takes one clip (B, C, T, H, W) or a non-empty list of "
                             f"clips, one per trained frame count {self.frame_counts}; got {type(x).__name__}")
        official = self.shift_mode == "official" and self.training
        logits = []
        for clip in x:
            check_clip(clip, self.in_channels, f"{type(self).__name__} (multi-clip forward)")
            b, t = clip.shape[0], clip.shape[2]
            if t not in self.frame_counts:
                raise ValueError(f"{type(self).__name__} (multi-clip forward): every clip's T must be a trained "
                                 f"frame count {self.frame_counts}, got a clip of shape {tuple(clip.shape)} "
                                 f"(T={t}); pass a single tensor to evaluate at any T")
            shift_frames = None
            if official:
                shift_frames = self.frame_counts[-1]
                if (b * t) % shift_frames:
                    raise ValueError(f"shift_mode='official' groups the {b}*{t} frames of a clip of shape "
                                     f"{tuple(clip.shape)} by {shift_frames}: B*T must be a multiple of "
                                     f"{shift_frames}")
            logits.append(self._branch_logits(clip, self._branch_index(t), shift_frames))
        return logits


class FFNResNet(FrameFlexible, ResNetTSMBase):
    """FFN on a TSM-ResNet. Architecture arguments as `TSMResNet`; FFN's own:

    frame_counts: the trained frame counts, one branch each (stored sorted ascending).
    private_bn:   one BN copy per branch (False: shared BNs, an ablation).
    adaconv:      one depthwise 1x1 adapter per block and branch (False: none, an ablation).
    adaconv_init: "paper" (default): N(0, 1e-3), the adapter starts near the identity map;
                  "official": kaiming normal fan_out, std sqrt(2 / C), which is what the official
                  code ends up with because its ResNet init loop re-initialises the adapters.
    shift_mode:   "per_branch" (default): each branch's shift groups frames by its own T.
                  "official": in the multi-clip forward in training mode, every branch's shift
                  groups frames by the largest count (16) as the official code does. For the 4F and
                  8F clips this shifts channels across the boundaries of *different videos* of the
                  batch (a confirmed bug of the official code, reproduced here on purpose); it needs
                  B*T divisible by 16. Single-clip and eval-mode forwards always use the real T.
    """

    def __init__(self, num_classes: int, frame_counts: Sequence[int] = (4, 8, 16),
                 layers: Sequence[int] = (3, 4, 6, 3), width: int = 64, stem_channels: int = 64,
                 stem_kernel: int = 7, stem_stride: int = 2, stem_pool: bool = True, in_channels: int = 3,
                 dropout: float = 0.5, fold_div: int = 8, zero_init_residual: bool = False,
                 norm_layer: NormLayer = nn.BatchNorm2d, private_bn: bool = True, adaconv: bool = True,
                 adaconv_init: str = "paper", shift_mode: str = "per_branch", block: str | type = "bottleneck",
                 shift_every: int = 1):
        counts = _sorted_counts(frame_counts)
        if adaconv_init not in ADACONV_INITS:
            raise ValueError(f"adaconv_init must be one of {ADACONV_INITS}, got {adaconv_init!r}")
        _check_shift_mode(shift_mode)
        super().__init__(num_classes, layers=layers, width=width, stem_channels=stem_channels,
                         stem_kernel=stem_kernel, stem_stride=stem_stride, stem_pool=stem_pool,
                         in_channels=in_channels, dropout=dropout, fold_div=fold_div,
                         zero_init_residual=zero_init_residual, norm_layer=norm_layer,
                         num_norms=len(counts) if private_bn else 1,
                         num_adaconvs=len(counts) if adaconv else 0, block=block, shift_every=shift_every)
        self.frame_counts = counts
        self.weight_sharing = True
        self.private_bn = private_bn
        self.adaconv = adaconv
        self.adaconv_init = adaconv_init
        self.shift_mode = shift_mode
        if adaconv and adaconv_init == "paper":  # the init loop above gave them kaiming fan_out
            for block in self.blocks():
                for conv in block.adaconv:
                    nn.init.normal_(conv.weight, 0, 1e-3)

    def features(self, x: Tensor) -> Tensor:
        """Pooled per-frame features (B, T, D) of one clip (B, C, T, H, W), from the nearest branch."""
        check_clip(x, self.in_channels, type(self).__name__)
        return self._features(x, self._branch_index(self.branch_for(x.shape[2])))

    def _branch_logits(self, x: Tensor, branch: int, shift_frames: int | None = None) -> Tensor:
        return self.head(self._features(x, branch, shift_frames))


class UnsharedFFN(FrameFlexible, nn.Module):
    """FFN without weight sharing (the paper's Table 4 ablation): one whole TSM-ResNet per trained frame
    count, `branches[i]` for `frame_counts[i]` (ascending), each with its own convs, BNs and fc, and no
    adaconv (weight alteration alters *shared* weights: it has nothing to alter here). About
    len(frame_counts) x the parameters of a TSM; the compute per clip is one TSM's.

    Interface as `FFNResNet`: `frame_counts`, `branch_for(T)`, `model(x)` at any T through the nearest
    branch (the shift uses the real T), `model([x4, x8, x16])` one logits per clip, `shift_mode`.
    The other keywords (architecture, dropout, fold_div, shift_every...) go to every `TSMResNet`.
    ImageNet weights load into every branch (`ffnlib.models.load_imagenet`). Built in branch order,
    so each branch draws its own random init.
    """

    def __init__(self, num_classes: int, frame_counts: Sequence[int] = (4, 8, 16),
                 shift_mode: str = "per_branch", **tsm_kwargs):
        counts = _sorted_counts(frame_counts)
        _check_shift_mode(shift_mode)
        super().__init__()
        self.frame_counts = counts
        self.shift_mode = shift_mode
        self.weight_sharing = False
        self.branches = nn.ModuleList(TSMResNet(num_classes, **tsm_kwargs) for _ in counts)
        first = self.branches[0]
        self.num_classes, self.in_channels, self.num_features = num_classes, first.in_channels, first.num_features
        self.fold_div, self.shift_every, self.arch = first.fold_div, first.shift_every, first.arch

    def network_for(self, num_frames: int) -> TSMResNet:
        """The TSM-ResNet that serves clips of `num_frames` frames (the nearest trained count's)."""
        return self.branches[self._branch_index(self.branch_for(num_frames))]

    def features(self, x: Tensor) -> Tensor:
        """Pooled per-frame features (B, T, D) of one clip (B, C, T, H, W), from the nearest branch."""
        check_clip(x, self.in_channels, type(self).__name__)
        return self.network_for(x.shape[2])._features(x, 0)

    def _branch_logits(self, x: Tensor, branch: int, shift_frames: int | None = None) -> Tensor:
        network = self.branches[branch]
        return network.head(network._features(x, 0, shift_frames))


# FFN keywords that need shared weights: keyword -> the value refused without sharing (None: any value).
_NEEDS_SHARING = {"adaconv": True, "private_bn": False, "adaconv_init": None}


def ffn_resnet(num_classes: int, *, weight_sharing: bool = True, **kwargs) -> FFNResNet | UnsharedFFN:
    """An `FFNResNet` (`weight_sharing=True`, the paper's FFN) or an `UnsharedFFN` (False: Table 4's
    "w/o Weight Sharing"). Without sharing, `adaconv=True`, `private_bn=False` and `adaconv_init` have
    no meaning (every BN is private already, there is no adaconv) and are refused."""
    if not isinstance(weight_sharing, bool):
        raise ValueError(f"weight_sharing must be True or False, got {weight_sharing!r}")
    if weight_sharing:
        return FFNResNet(num_classes, **kwargs)
    for key, refused in _NEEDS_SHARING.items():
        if key in kwargs and (refused is None or kwargs[key] == refused):
            raise ValueError(f"weight_sharing=False gives every frame count its own network (own BNs, no "
                             f"adaconv): {key}={kwargs[key]!r} does not apply")
    kwargs = {k: v for k, v in kwargs.items() if k not in _NEEDS_SHARING}
    return UnsharedFFN(num_classes, **kwargs)

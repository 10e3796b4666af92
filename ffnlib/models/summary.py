"""Plain-data descriptions of a model for the notebooks: shapes stage by stage, parameters by part."""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from .ensemble import Ensemble
from .ffn import UnsharedFFN
from .flops import meta_copy
from .resnet import BranchNorm, ResNetTSMBase


def stage_shapes(model: ResNetTSMBase | UnsharedFFN, num_frames: int, frame_size: int,
                 batch_size: int = 1) -> list[tuple[str, tuple]]:
    """(stage, output shape) from the input clip to the logits, run on a meta copy (free at any size).

    Between the input (B, C, T, H, W) and the logits (B, classes), frames are stacked: (B*T, C, H, W).
    An FFN without weight sharing shows the network that serves `num_frames`.
    """
    if isinstance(model, UnsharedFFN):
        model = model.network_for(num_frames)
    if not isinstance(model, ResNetTSMBase):
        raise ValueError(f"stage_shapes describes one TSM/FFN-ResNet, got {type(model).__name__}"
                         + (" (pass one of its members)" if isinstance(model, Ensemble) else ""))
    meta = meta_copy(model)
    points = [("stem conv1", meta.conv1), ("stem maxpool" if isinstance(meta.maxpool, nn.MaxPool2d)
                                           else "stem relu", meta.maxpool)]
    points += [(f"layer{i}", getattr(meta, f"layer{i}")[-1]) for i in range(1, 5)]
    points += [("avgpool", meta.avgpool), ("fc (per frame)", meta.fc)]
    shapes: dict[str, tuple] = {}

    def record(name):
        def hook(_module, _inputs, output) -> None:  # returns None: the output is left alone
            shapes.setdefault(name, tuple(output.shape))
        return hook

    for name, module in points:
        module.register_forward_hook(record(name))
    x = torch.empty(batch_size, meta.in_channels, num_frames, frame_size, frame_size, device="meta")
    with torch.no_grad():
        logits = meta(x)
    b, c, t, h, w = x.shape
    return ([("input (B, C, T, H, W)", tuple(x.shape)), ("frames (B*T, C, H, W)", (b * t, c, h, w))]
            + [(name, shapes[name]) for name, _ in points] + [("logits, mean over T", tuple(logits.shape))])


def _part(name: str, module: nn.Module) -> str:
    if name.startswith("fc."):
        return "fc"
    if ".adaconv." in name:
        return "adaconv"
    if isinstance(module, nn.Conv2d):
        return "conv"
    return "norm"


def _separate_networks(model: nn.Module) -> nn.ModuleList | None:
    """The networks of a model made of whole separate networks (FFN without weight sharing, Ensemble)."""
    if isinstance(model, UnsharedFFN):
        return model.branches
    if isinstance(model, Ensemble):
        return model.members
    return None


def parameter_table(model: nn.Module) -> list[dict]:
    """Parameters by part: conv, norm (BN affine), adaconv, fc (the total is `num_parameters`).

    Each row: part, sharing ("shared" by all frame counts or "private" per count), copies (1 or the
    number of branches), per_copy and total parameters. BN running statistics are buffers, not counted.
    A model made of separate networks of one architecture (an FFN without weight sharing, an
    `Ensemble`) has every part "private", in (networks x copies within one network) copies; its
    networks must have the same table (else a ValueError).
    """
    networks = _separate_networks(model)
    if networks is not None:
        tables = [parameter_table(network) for network in networks]
        differ = [i for i, table in enumerate(tables) if table != tables[0]]
        if differ:
            raise ValueError(f"parameter_table of {type(model).__name__}: its networks {differ} differ from "
                             f"network 0; describe each one apart")
        return [dict(row, sharing="private", copies=row["copies"] * len(tables), total=row["total"] * len(tables))
                for row in tables[0]]
    totals: dict[str, int] = defaultdict(int)
    copies: dict[str, int] = defaultdict(lambda: 1)
    owners = dict(model.named_modules())
    for name, param in model.named_parameters():
        owner_name = name.rpartition(".")[0]
        part = _part(name, owners[owner_name])
        totals[part] += param.numel()
        parent = owners.get(owner_name.rpartition(".")[0])
        if isinstance(parent, (BranchNorm, nn.ModuleList)) and part in ("norm", "adaconv"):
            copies[part] = len(parent)
    return [dict(part=part, sharing="private" if copies[part] > 1 else "shared", copies=copies[part],
                 per_copy=totals[part] // copies[part], total=totals[part])
            for part in ("conv", "norm", "adaconv", "fc") if part in totals]


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

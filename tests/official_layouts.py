"""The official checkpoints' key layouts, written down from the official code (not from ffnlib):
BeSpontaneous/FFN-pytorch 2D_Network/ops/backbone/resnet_TSM_FFN.py and resnet_TSM.py with the TSN
wrappers of ops/models_FFN.py and ops/models.py, and mit-han-lab/temporal-shift-module
ops/temporal_shift.py (make_temporal_shift, blockres). Used by test_official.py and
test_official_import.py to build checkpoint files as the official main.py / main_FFN.py save them."""
from __future__ import annotations

import torch

COUNTS = (4, 8, 16)
R50 = ((64, 3), (128, 4), (256, 6), (512, 3))  # (planes, blocks) per stage, Bottleneck, expansion 4
R101 = ((64, 3), (128, 4), (256, 23), (512, 3))


def bn(prefix: str, channels: int) -> dict:
    return {f"{prefix}.{leaf}": (() if leaf == "num_batches_tracked" else (channels,))
            for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def official_shapes(layout: str, stages=R50, shift_every: int = 1, num_classes: int = 7) -> dict[str, tuple]:
    """Key -> shape of an official ResNet TSN state dict (after `module.`), by the official code.

    "ffn": resnet_TSM_FFN.py: bn<k>_<count>, adaconv_<count>, downsample_conv, downsample_bn_<count>.
    "tsm": resnet_TSM.py (FFN repo): torchvision names.  "tsm_repo": torchvision names with the
    shifted blocks' conv1 wrapped as conv1.net (blocks 0, n, 2n... of each stage, n = shift_every).
    """
    counts = COUNTS if layout == "ffn" else (None,)

    def norms(prefix, channels):
        out = {}
        for c in counts:
            out.update(bn(prefix if c is None else f"{prefix}_{c}", channels))
        return out

    shapes = {"base_model.conv1.weight": (64, 3, 7, 7), **norms("base_model.bn1", 64)}
    inplanes = 64
    for s, (planes, blocks) in enumerate(stages, start=1):
        for b in range(blocks):
            p = f"base_model.layer{s}.{b}"
            conv1 = "conv1.net" if layout == "tsm_repo" and b % shift_every == 0 else "conv1"
            shapes[f"{p}.{conv1}.weight"] = (planes, inplanes, 1, 1)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            for k, ch in ((1, planes), (2, planes), (3, planes * 4)):
                shapes.update(norms(f"{p}.bn{k}", ch))
            if layout == "ffn":
                shapes.update({f"{p}.adaconv_{c}.weight": (inplanes, 1, 1, 1) for c in COUNTS})
            if b == 0:
                if layout == "ffn":
                    shapes[f"{p}.downsample_conv.weight"] = (planes * 4, inplanes, 1, 1)
                    for c in COUNTS:
                        shapes.update(bn(f"{p}.downsample_bn_{c}", planes * 4))
                else:
                    shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                    shapes.update(bn(f"{p}.downsample.1", planes * 4))
            inplanes = planes * 4
    shapes.update({"new_fc.weight": (num_classes, 2048), "new_fc.bias": (num_classes,)})
    return shapes


def random_state(shapes: dict, seed: int = 0) -> dict:
    """Distinct random values everywhere (BN statistics and counters too), so a tensor left at its
    initialisation, or put in the wrong place, cannot pass for the right one: counters in [1, 1e6),
    running variances in [0.5, 1.5), BN scales around 1, every other tensor signed and small (a
    network that computes something that depends on its input)."""
    g = torch.Generator().manual_seed(seed)

    def draw(key, shape):
        if key.endswith("num_batches_tracked"):
            return torch.randint(1, 10**6, shape, generator=g)
        if key.endswith("running_var"):
            return torch.rand(shape, generator=g) + 0.5
        if ".bn" in key or "downsample_bn" in key or "downsample.1" in key:
            return (1 if key.endswith(".weight") else 0) + 0.1 * torch.randn(shape, generator=g)
        return 0.05 * torch.randn(shape, generator=g)

    return {k: draw(k, s) for k, s in shapes.items()}


def save_official(path, state: dict, **extra) -> None:
    """As main.py / main_FFN.py save: DataParallel's `module.` prefix, epoch, arch, best_prec1, optimizer."""
    torch.save({"epoch": 50, "arch": "resnet50", "state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                              "param_groups": [{"lr": 0.01, "lr_mult": 1, "decay_mult": 1, "name": "normal_weight",
                                                "params": [0]}]},
                "best_prec1": 63.61, "val_acc_top1": [50.0, 63.61], **extra}, path)

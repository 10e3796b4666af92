"""`create_model(name, num_classes, pretrained=None, **kwargs)` and the named architectures.

    tsm_resnet, ffn_resnet          every architecture argument is a keyword (ResNet-50 by default)
    tsm_resnet18, ffn_resnet18      ResNet-18 (basic blocks, layers 2,2,2,2, width 64, 7x7/2 stem, max-pool)
    tsm_resnet50, ffn_resnet50      ResNet-50 (bottlenecks, layers 3,4,6,3, width 64, 7x7/2 stem, max-pool)
    tsm_resnet101, ffn_resnet101    ResNet-101 (bottlenecks, layers 3,4,23,3; `shift_every=2` for the
                                    official TSM's shift in every other block)
    tsm_small, ffn_small            the CPU network for the built-in ~32x32 frames: one block per stage,
                                    planes 8,16,32,64, a 32-channel 3x3/2 stem without max-pool, last BN
                                    of every block zero-initialised (~130k parameters)
    tsm_medium, ffn_medium          the same stem, two blocks per stage, planes 16,32,64,128 (~0.9M)

Named variants fix their architecture (`ARCHITECTURES`, keys `ARCH_KEYS`): pass `block`, `layers`,
`width`... to `tsm_resnet`/`ffn_resnet` for another one. Other keywords (dropout, fold_div,
shift_every, FFN's frame_counts, private_bn, adaconv, adaconv_init, shift_mode, weight_sharing...) go
to the model class (`ffnlib.models.ffn.ffn_resnet` for the FFN names).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Callable

from torch import Tensor, nn

from .ffn import ffn_resnet
from .resnet import ARCH_KEYS, ARCHITECTURES, TSMResNet
from .weights import imagenet_state_dict, load_imagenet, torchvision_arch

__all__ = ["ARCH_KEYS", "ARCHITECTURES", "create_model", "list_models", "register_model"]

_FAMILIES: dict[str, Callable[..., nn.Module]] = {"tsm": TSMResNet, "ffn": ffn_resnet}
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make `builder(num_classes, **kwargs)` available as `create_model(name, ...)`."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = builder


def list_models() -> list[str]:
    return sorted(_MODELS)


def _fixed(family: str, builder: Callable[..., nn.Module], arch_name: str, arch: dict) -> Callable[..., nn.Module]:
    def build(num_classes: int, **kwargs) -> nn.Module:
        fixed = sorted(set(kwargs) & set(ARCH_KEYS))
        if fixed:
            raise ValueError(f"{family}_{arch_name} fixes the architecture; {fixed} cannot be changed "
                             f"(use '{family}_resnet' for another one)")
        return builder(num_classes, **{**arch, **kwargs})
    return build


for _family, _builder in _FAMILIES.items():
    register_model(f"{_family}_resnet", _builder)
    for _arch_name, _arch in ARCHITECTURES.items():
        register_model(f"{_family}_{_arch_name}", _fixed(_family, _builder, _arch_name, _arch))


def create_model(name: str, num_classes: int, pretrained: str | Path | Mapping[str, Tensor] | None = None,
                 **kwargs) -> nn.Module:
    """Build model `name` (see `list_models()`) for `num_classes` classes.

    pretrained: None (random init), a path to (or a dict of) a torchvision-format ResNet state dict
    of the model's depth (resnet18, resnet50 or resnet101), or "imagenet" (torchvision's registry,
    only where torchvision imports; otherwise the error says which file to download and to pass its
    local path). The loading report is logged and kept as `model.load_report`.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    model = _MODELS[name](num_classes, **kwargs)
    if pretrained is not None:
        if isinstance(pretrained, str) and pretrained == "imagenet":
            source = imagenet_state_dict(torchvision_arch(model, where=name))
        else:
            source = pretrained
        model.load_report = load_imagenet(model, source)
    return model

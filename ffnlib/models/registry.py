"""`create_model(name, num_classes, pretrained=None, **kwargs)` and the named architectures.

    tsm_resnet, ffn_resnet        every architecture argument is a keyword (ResNet-50 by default)
    tsm_resnet50, ffn_resnet50    ResNet-50 (layers 3,4,6,3, width 64, 7x7/2 stem, max-pool), fixed
    tsm_small, ffn_small          the CPU network for the built-in ~32x32 frames: one block per stage,
                                  planes 8,16,32,64, a 32-channel 3x3/2 stem without max-pool, last BN
                                  of every block zero-initialised (~130k parameters)
    tsm_medium, ffn_medium        the same stem, two blocks per stage, planes 16,32,64,128 (~0.9M)

Named variants fix their architecture: pass `layers`, `width`... to `tsm_resnet`/`ffn_resnet` for
another one. Other keywords (dropout, fold_div, FFN's frame_counts, private_bn, adaconv, adaconv_init,
shift_mode...) go to the model class.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Callable

from torch import Tensor, nn

from .ffn import FFNResNet
from .resnet import TSMResNet
from .weights import imagenet_state_dict, load_imagenet

ARCH_KEYS = ("layers", "width", "stem_channels", "stem_kernel", "stem_stride", "stem_pool")

ARCHITECTURES: dict[str, dict] = {
    "resnet50": dict(layers=(3, 4, 6, 3), width=64, stem_channels=64, stem_kernel=7, stem_stride=2,
                     stem_pool=True, zero_init_residual=False),
    "small": dict(layers=(1, 1, 1, 1), width=8, stem_channels=32, stem_kernel=3, stem_stride=2,
                  stem_pool=False, zero_init_residual=True),
    "medium": dict(layers=(2, 2, 2, 2), width=16, stem_channels=32, stem_kernel=3, stem_stride=2,
                   stem_pool=False, zero_init_residual=True),
}

_FAMILIES = {"tsm": TSMResNet, "ffn": FFNResNet}
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make `builder(num_classes, **kwargs)` available as `create_model(name, ...)`."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = builder


def list_models() -> list[str]:
    return sorted(_MODELS)


def _fixed(cls: type, arch_name: str, arch: dict) -> Callable[..., nn.Module]:
    def build(num_classes: int, **kwargs) -> nn.Module:
        fixed = sorted(set(kwargs) & set(ARCH_KEYS))
        if fixed:
            raise ValueError(f"{arch_name} fixes the architecture; {fixed} cannot be changed "
                             f"(use '{'tsm' if cls is TSMResNet else 'ffn'}_resnet' for another one)")
        return cls(num_classes, **{**arch, **kwargs})
    return build


for _family, _cls in _FAMILIES.items():
    register_model(f"{_family}_resnet", _cls)
    for _arch_name, _arch in ARCHITECTURES.items():
        _name = f"{_family}_{_arch_name}"
        register_model(_name, _fixed(_cls, _name, _arch))


def create_model(name: str, num_classes: int, pretrained: str | Path | Mapping[str, Tensor] | None = None,
                 **kwargs) -> nn.Module:
    """Build model `name` (see `list_models()`) for `num_classes` classes.

    pretrained: None (random init), a path to (or a dict of) a torchvision-format ResNet-50 state
    dict, or "imagenet" (torchvision's registry, only where torchvision imports; otherwise the error
    says to pass a local path). The loading report is logged and kept as `model.load_report`.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    model = _MODELS[name](num_classes, **kwargs)
    if pretrained is not None:
        source = imagenet_state_dict() if isinstance(pretrained, str) and pretrained == "imagenet" else pretrained
        model.load_report = load_imagenet(model, source)
    return model

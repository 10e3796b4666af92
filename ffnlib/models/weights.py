"""ImageNet initialisation from a torchvision-format ResNet state dict.

TSM-ResNet keys are torchvision keys, so they load one to one. FFN-ResNet maps every BN key
`<bn>.<param>` (running statistics included) onto each private copy `<bn>.<branch>.<param>`, and
`downsample.0/1` onto the shared downsample conv and the private downsample BNs. The fc (a new task)
and the adaconv adapters (no ImageNet counterpart) keep their fresh initialisation.

Loading is strict otherwise: a source key the model cannot place, a model key the source lacks or a
shape that differs is an error that names the keys (usually: the architecture is not ResNet-50).
The weights come from a local file (`torch.load(weights_only=True)`); `imagenet_state_dict()` asks
torchvision's weight registry only where torchvision imports.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .resnet import BranchNorm

log = logging.getLogger(__name__)

IMAGENET_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"  # torchvision IMAGENET1K_V1
_NEW_PREFIXES = ("fc.",)  # source keys never loaded: the classifier is new
_OPTIONAL_LEAVES = ("num_batches_tracked",)  # absent from old torchvision files; not an error


@dataclass
class LoadReport:
    """What `load_imagenet` did: model keys set from the source, model keys left as initialised, and
    source keys not used (the ImageNet fc)."""

    loaded: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"loaded {len(self.loaded)} tensors; newly initialised {len(self.initialised)} "
                f"({_summarise(self.initialised)}); skipped from the source {len(self.skipped)} "
                f"({_summarise(self.skipped)})")


def _summarise(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "") if keys else "none"


def source_key_map(model: nn.Module) -> dict[str, str | None]:
    """Model state key -> torchvision key it is loaded from (None: newly initialised)."""
    branch_norms = {name for name, m in model.named_modules() if isinstance(m, BranchNorm)}
    mapping: dict[str, str | None] = {}
    for key in model.state_dict():
        parent, _, leaf = key.rpartition(".")
        owner, _, _branch = parent.rpartition(".")
        if key.startswith(_NEW_PREFIXES) or ".adaconv." in key:
            mapping[key] = None
        elif owner in branch_norms:  # "<bn>.<branch>.<leaf>" <- "<bn>.<leaf>"
            mapping[key] = f"{owner}.{leaf}"
        else:
            mapping[key] = key
    return mapping


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a local file (tensors only, read with `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weight file (expected a torchvision-format ResNet-50 "
                                f"state dict, e.g. {IMAGENET_URL.rsplit('/', 1)[-1]})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a flat state dict of tensors (torchvision format), got "
                         f"{type(state).__name__}" + (f" with keys {list(state)[:5]}" if isinstance(state, Mapping) else ""))
    return dict(state)


def imagenet_state_dict() -> dict[str, Tensor]:
    """torchvision's ImageNet ResNet-50 (IMAGENET1K_V1, what TSM and FFN start from), where torchvision imports."""
    try:
        import torchvision  # noqa: F401  (its CPU/CUDA build may not match torch here)
        from torchvision.models import ResNet50_Weights
    except Exception as error:  # ImportError, or RuntimeError "operator torchvision::nms does not exist"
        raise RuntimeError(
            f"pretrained='imagenet' needs torchvision's weight registry, but torchvision does not import "
            f"here ({type(error).__name__}: {error}). Download {IMAGENET_URL} elsewhere and pass its local "
            f"path: create_model(..., pretrained='/path/to/resnet50-0676ba61.pth')") from error
    return ResNet50_Weights.IMAGENET1K_V1.get_state_dict(progress=False)


def load_imagenet(model: nn.Module, state_dict_or_path: Mapping[str, Tensor] | str | Path) -> LoadReport:
    """Initialise `model` (TSM- or FFN-ResNet) from a torchvision-format ResNet state dict, in place.

    Raises ValueError, naming the keys, on a source key the model cannot place, a model key the
    source lacks, or a shape mismatch; nothing is modified in that case.
    """
    where = "the given state dict"
    if isinstance(state_dict_or_path, (str, Path)):
        where = str(state_dict_or_path)
        source = read_state_dict(state_dict_or_path)
    else:
        source = dict(state_dict_or_path)
        not_tensors = sorted(k for k, v in source.items() if not isinstance(v, Tensor))
        if not_tensors:
            raise ValueError(f"{where}: expected a flat state dict of tensors (torchvision format); "
                             f"{_summarise(not_tensors)} are not tensors")
    mapping = source_key_map(model)
    target = model.state_dict()

    used = {src for src in mapping.values() if src is not None}
    skipped = sorted(k for k in source if k.startswith(_NEW_PREFIXES))
    unexpected = sorted(k for k in source if k not in used and not k.startswith(_NEW_PREFIXES))
    missing, mismatched, report = [], [], LoadReport(skipped=skipped)
    for key, src in mapping.items():
        if src is None:
            report.initialised.append(key)
        elif src not in source:
            if key.rpartition(".")[2] not in _OPTIONAL_LEAVES:
                missing.append(src)
        elif source[src].shape != target[key].shape:
            mismatched.append(f"{src} {tuple(source[src].shape)} -> {key} {tuple(target[key].shape)}")
        else:
            report.loaded.append(key)
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected source keys ({_summarise(unexpected)})")
    if missing:
        problems.append(f"{len(missing)} keys missing from the source ({_summarise(sorted(set(missing)))})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({_summarise(mismatched, 3)})")
    if problems:
        arch = getattr(model, "arch", {})
        raise ValueError(f"cannot load {where} into {type(model).__name__} {arch}: " + "; ".join(problems)
                         + ". The source must be a torchvision-format ResNet of the same architecture "
                           "(ImageNet weights exist for ResNet-50 only).")
    with torch.no_grad():
        for key in report.loaded:
            target[key].copy_(source[mapping[key]])
    log.info("ImageNet weights from %s: %s", where, report)
    return report

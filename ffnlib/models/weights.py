"""ImageNet initialisation from a torchvision-format ResNet state dict (ResNet-18, -50 or -101).

TSM-ResNet keys are torchvision keys, so they load one to one. FFN-ResNet maps every BN key
`<bn>.<param>` (running statistics included) onto each private copy `<bn>.<branch>.<param>`, and
`downsample.0/1` onto the shared downsample conv and the private downsample BNs. An FFN without
weight sharing (`UnsharedFFN`) loads the whole source into each of its networks
(`branches.<i>.<key>` <- `<key>`). The fc (a new task) and the adaconv adapters (no ImageNet
counterpart) keep their fresh initialisation.

Loading is strict otherwise: a source key the model cannot place, a model key the source lacks or a
shape that differs is an error that names the keys and says which depth the source and the model
are. The weights come from a local file (`torch.load(weights_only=True)`; torchvision's files:
`IMAGENET_FILES`); `imagenet_state_dict(arch)` asks torchvision's weight registry only where
torchvision imports.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .ffn import UnsharedFFN
from .resnet import ARCH_KEYS, ARCHITECTURES, BranchNorm

log = logging.getLogger(__name__)

# torchvision's IMAGENET1K_V1 weights (what TSM and FFN start from), by architecture name.
IMAGENET_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth",
                  "resnet101": "resnet101-63fe2227.pth"}
_TORCHVISION_WEIGHTS = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights",
                        "resnet101": "ResNet101_Weights"}
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
                f"({summarise_keys(self.initialised)}); skipped from the source {len(self.skipped)} "
                f"({summarise_keys(self.skipped)})")


def summarise_keys(keys, limit: int = 4) -> str:
    """At most `limit` of `keys`, then how many more; "none" when there are none."""
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "") if keys else "none"


def imagenet_url(arch: str) -> str:
    """The download URL of torchvision's ImageNet weights for `arch` (resnet18, resnet50, resnet101)."""
    if arch not in IMAGENET_FILES:
        raise ValueError(f"ImageNet weights exist for {', '.join(IMAGENET_FILES)} only, not {arch!r}")
    return f"https://download.pytorch.org/models/{IMAGENET_FILES[arch]}"


def _weights_help() -> str:
    return "; ".join(f"{arch}: {imagenet_url(arch)}" for arch in IMAGENET_FILES)


def torchvision_arch(model: nn.Module, where: str | None = None) -> str:
    """The name (resnet18, resnet50, resnet101) of the torchvision ResNet `model` is built on; a
    ValueError naming `where` (default: the model's class) when it is none of them."""
    arch = getattr(model, "arch", None)
    for name in IMAGENET_FILES:
        if arch == {key: ARCHITECTURES[name][key] for key in ARCH_KEYS}:
            return name
    raise ValueError(f"{where or type(model).__name__}: ImageNet weights exist for {', '.join(IMAGENET_FILES)} "
                     f"only; this model's architecture {arch} is none of them")


def describe_source(source: Mapping[str, Tensor]) -> str:
    """What ResNet a torchvision-format state dict holds, from its keys: e.g. "resnet18 (basic blocks,
    layers 2,2,2,2, width 64)", or the block type, layers and width when it is no named depth."""
    blocks: dict[int, set[int]] = {1: set(), 2: set(), 3: set(), 4: set()}
    for key in source:
        match = re.match(r"layer([1-4])\.(\d+)\.", key)
        if match:
            blocks[int(match[1])].add(int(match[2]))
    layers = tuple(len(blocks[i]) for i in range(1, 5))
    block = "bottleneck" if any(re.match(r"layer\d\.\d+\.conv3\.weight$", k) for k in source) else "basic"
    first = source.get("layer1.0.conv1.weight")
    width = int(first.shape[0]) if isinstance(first, Tensor) and first.dim() else None
    text = f"{block} blocks, layers {','.join(map(str, layers))}, width {width}"
    for name in IMAGENET_FILES:
        arch = ARCHITECTURES[name]
        if (arch["block"], tuple(arch["layers"]), arch["width"]) == (block, layers, width):
            return f"{name} ({text})"
    return text


def source_key_map(model: nn.Module) -> dict[str, str | None]:
    """Model state key -> torchvision key it is loaded from (None: newly initialised)."""
    if isinstance(model, UnsharedFFN):  # every network from the whole source
        return {f"branches.{i}.{key}": src for i, network in enumerate(model.branches)
                for key, src in source_key_map(network).items()}
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
        raise FileNotFoundError(f"{path}: no such weight file (expected a torchvision-format ResNet state "
                                f"dict, as torchvision's {', '.join(IMAGENET_FILES.values())})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a flat state dict of tensors (torchvision format), got "
                         f"{type(state).__name__}" + (f" with keys {list(state)[:5]}" if isinstance(state, Mapping) else ""))
    return dict(state)


def imagenet_state_dict(arch: str = "resnet50") -> dict[str, Tensor]:
    """torchvision's ImageNet weights (IMAGENET1K_V1, what TSM and FFN start from) for `arch`
    (resnet18, resnet50 or resnet101), where torchvision imports."""
    url = imagenet_url(arch)
    try:
        import torchvision  # noqa: F401  (its CPU/CUDA build may not match torch here)
        from torchvision import models
    except Exception as error:  # ImportError, or RuntimeError "operator torchvision::nms does not exist"
        raise RuntimeError(
            f"pretrained='imagenet' needs torchvision's weight registry, but torchvision does not import "
            f"here ({type(error).__name__}: {error}). Download {url} elsewhere and pass its local "
            f"path: create_model(..., pretrained='/path/to/{IMAGENET_FILES[arch]}')") from error
    return getattr(models, _TORCHVISION_WEIGHTS[arch]).IMAGENET1K_V1.get_state_dict(progress=False)


def load_imagenet(model: nn.Module, state_dict_or_path: Mapping[str, Tensor] | str | Path) -> LoadReport:
    """Initialise `model` (TSM-ResNet, FFN-ResNet or UnsharedFFN) from a torchvision-format ResNet state
    dict of the same depth, in place.

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
                             f"{summarise_keys(not_tensors)} are not tensors")
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
        problems.append(f"{len(unexpected)} unexpected source keys ({summarise_keys(unexpected)})")
    if missing:
        problems.append(f"{len(missing)} keys missing from the source ({summarise_keys(sorted(set(missing)))})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({summarise_keys(mismatched, 3)})")
    if problems:
        arch = getattr(model, "arch", {})
        try:
            model_is = torchvision_arch(model)
        except ValueError:
            model_is = "no torchvision depth"
        raise ValueError(f"cannot load {where} into {type(model).__name__} {arch}: " + "; ".join(problems)
                         + f". The source holds {describe_source(source)}; the model is {model_is}. The source "
                           f"must be a torchvision-format ResNet of the model's depth (ImageNet weights: "
                           f"{_weights_help()}).")
    with torch.no_grad():
        for key in report.loaded:
            target[key].copy_(source[mapping[key]])
    log.info("ImageNet weights from %s: %s", where, report)
    return report

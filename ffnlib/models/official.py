"""The released TSM and FFN checkpoints of the official code, loaded as ffnlib models.

    model = load_official_checkpoint("TSM_somethingv2_RGB_resnet50_shift8_blockres_avg_segment16_e45.pth")
    model(clip)    # clip (B, C, T, H, W) float, any T -> logits (B, num_classes); eval mode, on the CPU
    model.official # what was found in the file (OfficialCheckpoint): family, depth, classes, T, epoch...

The file is read with `torch.load(path, map_location="cpu", weights_only=True)`: the released files
hold CUDA tensors (a CPU-only machine loads them) and nothing but tensors and plain values may be
unpickled. Every tensor of the ffnlib model comes from the file, and every tensor of the file goes
into the model: a key that cannot be placed, a key the file lacks, or a shape that does not fit is an
`OfficialCheckpointError` naming the file and the keys; no layer is ever left at its initialisation.
(`num_batches_tracked`, a counter that evaluation does not use, may be absent.)

Naming rules, read from the official code
-----------------------------------------
A checkpoint is what `main.py` / `main_FFN.py` save: a dict with `state_dict` (the weights), `epoch`,
`arch`, `best_prec1`, `optimizer` and, in FFN's, lists of per-epoch accuracies and losses. The model
was wrapped in `DataParallel` (or `DistributedDataParallel`), so every key starts with `module.`. The
TSN wrapper (`ops/models.py`, `ops/models_FFN.py`) holds the ResNet as `base_model` and, with dropout
> 0, replaces the ResNet's `fc` by a `Dropout` and classifies with its own `new_fc` (dropout 0 keeps a
Linear at `base_model.fc` instead). After `module.` is removed:

    ffnlib key                          official key
    fc.weight / fc.bias                 new_fc.weight / new_fc.bias  (or base_model.fc.*)
    conv1.weight                        base_model.conv1.weight
    <everything else>                   base_model.<same key>       (torchvision names)

  TSM-ResNet, FFN repository (`ops/backbone/resnet_TSM.py`): torchvision names exactly
  (`layer1.0.conv1.weight`, `layer1.0.downsample.0.weight`, `downsample.1.*`); the shift is a
  parameter-free `tsm` module inside every block.

  TSM-ResNet, TSM repository (`ops/temporal_shift.py`, blockres): torchvision's ResNet whose block
  conv1 is wrapped in `TemporalShift(net=conv1)`, so a shifted block's conv1 is
  `layer1.0.conv1.net.weight`. ResNet-50 shifts every block; a ResNet with 23 or more blocks in
  layer3 (ResNet-101) shifts blocks 0, 2, 4, ... of every stage only (`n_round = 2`), and the other
  blocks keep `conv1.weight`. The shift has no weights in either repository.

  FFN-ResNet, FFN repository (`ops/backbone/resnet_TSM_FFN.py`): the convs and the classifier are
  shared; every BatchNorm exists once per frame count, named with the count (not the branch index):
  `bn1_4`, `bn1_8`, `bn1_16` for the stem and each block's `bn1/bn2/bn3`; the downsample is split
  into `downsample_conv` and `downsample_bn_4/_8/_16`; the adapters are `adaconv_4/_8/_16`. In
  ffnlib the branch index b counts the sorted frame counts (4 -> 0, 8 -> 1, 16 -> 2):

    ffnlib key                          official key (after base_model.)
    bn1.<b>.<leaf>                      bn1_<count>.<leaf>
    layerI.J.bnK.<b>.<leaf>             layerI.J.bnK_<count>.<leaf>
    layerI.J.adaconv.<b>.weight         layerI.J.adaconv_<count>.weight
    layerI.J.downsample.0.weight        layerI.J.downsample_conv.weight
    layerI.J.downsample.1.<b>.<leaf>    layerI.J.downsample_bn_<count>.<leaf>

What is detected: the family (FFN when the stem BN carries a frame count), the layout (TSM
repository when some conv1 is wrapped), the block type (Bottleneck when blocks have conv3) and the
blocks per stage, hence the depth (ResNet-18/50/101; the model is built with
`create_model(f"{family}_resnet{depth}", num_classes, ...)`), the number of classes (the
classifier's rows) and FFN's frame counts (the stem BN suffixes). The frame count a TSM was trained
with is not in the weights: the TSM repository's file names carry it (`TSM_somethingv2_RGB_resnet50_
shift8_blockres_avg_segment16_e45.pth`: fold_div 8, 16 frames); `OfficialCheckpoint.num_frames` is None
otherwise.

Settings the weights imply
--------------------------
FFN's released weights were trained with the official code's adaconv initialisation (its ResNet init
loop re-initialises the adapters: kaiming fan_out) and its training shift (every branch's shift groups
frames by 16, mixing the 4F/8F clips of neighbouring videos). Both act only in training; the model is
built with `adaconv_init="official"` and `shift_mode="official"` to record them. At evaluation the
official code (`main_FFN.py --num_segments_H T`) builds its network for the real T: the shift groups
frames by T, the branch is the nearest of 4/8/16 with ties to the larger (5 -> 4, 6 -> 8, 12 -> 16),
and the logits are averaged over the T frames. ffnlib's single-clip forward does the same in either
shift mode. ffnlib applies the adaconv as a scale folded into conv1's weight (`AdaConv`), the official
code as a depthwise conv added to its input: the same numbers up to float32 rounding.
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .registry import create_model, list_models
from .resnet import BranchNorm
from .weights import summarise_keys

log = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.",)  # DataParallel / DistributedDataParallel
BACKBONE = "base_model."
CLASSIFIERS = ("new_fc.", "base_model.fc.")  # dropout > 0: new_fc; dropout 0: the ResNet's own fc
OPTIONAL_LEAVES = ("num_batches_tracked",)  # a BN counter evaluation does not use
LAYOUTS = ("ffn_repo", "tsm_repo")
DEPTHS = {("bottleneck", (3, 4, 6, 3)): 50, ("bottleneck", (3, 4, 23, 3)): 101,
          ("bottleneck", (3, 8, 36, 3)): 152, ("basic", (2, 2, 2, 2)): 18, ("basic", (3, 4, 6, 3)): 34}
SHIFT_EVERY = "shift_every"  # create_model keyword: shift blocks 0, n, 2n... of each stage (TSM repo R101)
FFN_IMPLIED = {"adaconv_init": "official", "shift_mode": "official"}  # how the FFN weights were trained

_STAGE = re.compile(r"^base_model\.layer([1-4])\.(\d+)\.")
_FFN_STEM = re.compile(r"^base_model\.bn1_(\d+)\.")


class OfficialCheckpointError(ValueError):
    """A file that is not an official TSM/FFN checkpoint ffnlib can load, or that does not fit."""


@dataclass(frozen=True)
class OfficialCheckpoint:
    """What an official checkpoint holds, as detected from its keys and its file name."""

    source: str  # the file (or "a state dict")
    layout: str  # "ffn_repo" (BeSpontaneous/FFN-pytorch) or "tsm_repo" (mit-han-lab/temporal-shift-module)
    family: str  # "tsm" or "ffn"
    depth: int  # 18, 50, 101...
    num_classes: int
    frame_counts: tuple = ()  # FFN: the trained frame counts (4, 8, 16); TSM: ()
    num_frames: int | None = None  # TSM: the T it was trained at, where the file name says it
    model_kwargs: dict = field(default_factory=dict)  # create_model keywords the weights imply
    epoch: int | None = None  # from the file: epochs trained
    best_prec1: float | None = None  # from the file: the official validation top-1 it was saved with
    arch: str | None = None  # from the file: the official `arch` argument ("resnet50")

    @property
    def model_name(self) -> str:
        return f"{self.family}_resnet{self.depth}"

    def to_dict(self) -> dict:
        """Plain types only (tuples as lists), for checkpoints and YAML."""
        return _plain(asdict(self))

    def __str__(self) -> str:
        frames = (f"frame counts {'/'.join(map(str, self.frame_counts))}" if self.family == "ffn" else
                  f"trained at {self.num_frames}F" if self.num_frames else "training T not in the file")
        return (f"{self.model_name} ({self.layout}), {self.num_classes} classes, {frames}, epoch {self.epoch}, "
                f"best_prec1 {self.best_prec1}")


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------ reading
def _fail(source: str, message: str) -> OfficialCheckpointError:
    return OfficialCheckpointError(f"{source}: {message}")


def read_official_file(path: str | Path) -> tuple[dict[str, Tensor], dict]:
    """The weights of an official checkpoint file (DataParallel's `module.` removed) and its other
    plain entries (epoch, arch, best_prec1...). Tensors are read onto the CPU; any pickled object
    other than tensors and plain containers is refused (`weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise OfficialCheckpointError(f"{path}: no such file (expected an official TSM/FFN checkpoint .pth/.pth.tar)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for a refused object; others for a damaged file
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found:
            raise _fail(str(path), f"holds a pickled object ({found.group(1)}) that weights_only=True refuses "
                        "to load; only tensors and plain values are read from checkpoints") from None
        first = (str(e).strip().splitlines() or [""])[0]
        raise _fail(str(path), f"not a readable checkpoint ({type(e).__name__}: {first})") from None
    return unwrap(raw, str(path))


def unwrap(raw, source: str) -> tuple[dict[str, Tensor], dict]:
    """(weights without the `module.` prefix, the file's other entries) of an object `torch.load` read."""
    if not isinstance(raw, dict):
        raise _fail(source, f"expected a dict with a 'state_dict' entry, got {type(raw).__name__}")
    if "model" in raw and "config" in raw:
        raise _fail(source, "is an ffnlib checkpoint (written by ffnlib.train), not an official one; "
                    "load its model folder with ffnlib.train.load_trained")
    if "state_dict" in raw:
        state, meta = raw["state_dict"], {k: v for k, v in raw.items() if k not in ("state_dict", "optimizer")}
    elif raw and all(isinstance(v, Tensor) for v in raw.values()):
        state, meta = raw, {}  # the weights alone
    else:
        raise _fail(source, f"expected a dict with a 'state_dict' entry (as the official main.py saves), "
                    f"got entries {summarise_keys(sorted(map(str, raw)))}")
    if not isinstance(state, dict) or not state:
        raise _fail(source, "'state_dict' is empty or not a dict of tensors")
    not_tensors = sorted(k for k, v in state.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise _fail(source, f"'state_dict' entries that are not tensors: {summarise_keys(not_tensors)}")
    for prefix in WRAPPER_PREFIXES:
        wrapped = [k.startswith(prefix) for k in state]
        if all(wrapped):
            state = {k[len(prefix):]: v for k, v in state.items()}
        elif any(wrapped):
            raise _fail(source, f"some keys start with {prefix!r} and some do not")
    return dict(state), meta


# ------------------------------------------------------------------------------------------ detection
def _number(value, kind):
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def inspect_official(state: dict[str, Tensor], meta: dict | None = None,
                     source: str = "a state dict") -> OfficialCheckpoint:
    """Detect what an official state dict (already unwrapped: keys `base_model.*`, `new_fc.*`) holds.

    `meta` is the file's other entries (epoch, arch, best_prec1); `source` names the file in errors,
    and a name in the TSM repository's pattern (`TSM_<dataset>_RGB_<arch>_shift<fold_div>_blockres_avg_segment<T>_
    e<epochs>.pth`) gives the fold and the T it was trained at.
    """
    meta = meta or {}
    name = Path(source).name
    strangers = sorted(k for k in state if not k.startswith((BACKBONE, *CLASSIFIERS)))
    if strangers:
        hint = (" (a torchvision ImageNet ResNet? pass it as create_model(..., pretrained=path))"
                if "conv1.weight" in state else "")
        raise _fail(source, "keys outside the official TSN wrapper (base_model.*, new_fc.*): "
                    f"{summarise_keys(strangers)}{hint}")
    if any(k.startswith("base_model.layer2.net.") for k in state):
        raise _fail(source, "has temporal pooling (TSM repository's tpool models): not supported by ffnlib")
    if any(".nl." in k for k in state):
        raise _fail(source, "has non-local blocks (TSM repository's _nl models): not supported by ffnlib")
    tsm_repo_name = re.match(r"TSM_\w+?_(RGB|Flow)_", name)  # TSM_<dataset>_<modality>_<arch>[_shift8_blockres]_...
    if tsm_repo_name and tsm_repo_name.group(1) == "Flow":
        raise _fail(source, "is an optical-flow model of the TSM repository: ffnlib's models take RGB clips")
    if tsm_repo_name and "_shift" not in name:
        raise _fail(source, "is a TSN of the TSM repository (no '_shift' in its name: no temporal shift); "
                    "ffnlib's models always shift")

    blocks: dict[int, int] = {}
    for key in state:
        found = _STAGE.match(key)
        if found:
            stage, block = int(found.group(1)), int(found.group(2))
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    if sorted(blocks) != [1, 2, 3, 4]:
        raise _fail(source, f"expected a ResNet with base_model.layer1..layer4, found stages {sorted(blocks)}")
    layers = tuple(blocks[s] for s in (1, 2, 3, 4))
    block_type = "bottleneck" if any(k.endswith(".conv3.weight") for k in state) else "basic"
    depth = DEPTHS.get((block_type, layers))
    if depth is None:
        raise _fail(source, f"a ResNet with {block_type} blocks {layers} is none of ResNet-18/34/50/101/152")
    arch = meta.get("arch")
    if isinstance(arch, str) and re.fullmatch(r"resnet\d+", arch) and arch != f"resnet{depth}":
        raise _fail(source, f"its 'arch' says {arch} but its weights are a ResNet-{depth}")

    classifier = [k for k in state if k.startswith(CLASSIFIERS) and k.endswith(".weight")]
    if len(classifier) != 1:
        raise _fail(source, "expected one classifier (new_fc.weight or base_model.fc.weight), "
                    f"found {classifier or 'none'}")
    num_classes = int(state[classifier[0]].shape[0])

    counts = tuple(sorted({int(m.group(1)) for m in map(_FFN_STEM.match, state) if m}))
    wrapped = {(int(m.group(1)), int(m.group(2))) for k in state if k.endswith(".conv1.net.weight")
               for m in [_STAGE.match(k)] if m}
    family = "ffn" if counts else "tsm"
    layout = "tsm_repo" if wrapped else "ffn_repo"
    kwargs: dict = {}
    if family == "ffn":
        if layout == "tsm_repo":
            raise _fail(source, "mixes FFN's per-count BatchNorms with the TSM repository's wrapped conv1")
        kwargs.update(FFN_IMPLIED, frame_counts=counts)
    elif layout == "tsm_repo":
        every = next((n for n in (1, 2) if wrapped == {(s, b) for s in (1, 2, 3, 4) for b in range(blocks[s])
                                                       if b % n == 0}), None)
        if every is None:
            raise _fail(source, f"shifts blocks {sorted(wrapped)}: neither every block nor every other one")
        if every != 1:
            kwargs[SHIFT_EVERY] = every
    # The TSM repository names its files by their settings: the fold (shift8) and the training T (segment16).
    fold = re.search(r"_shift(\d+)_", name) if tsm_repo_name else None
    if fold and int(fold.group(1)) != 8:
        kwargs["fold_div"] = int(fold.group(1))
    segments = re.search(r"_segment(\d+)_", name) if tsm_repo_name else None
    best = _number(meta.get("best_prec1"), float)
    return OfficialCheckpoint(
        source=source, layout=layout, family=family, depth=depth, num_classes=num_classes, frame_counts=counts,
        num_frames=int(segments.group(1)) if segments and family == "tsm" else None, model_kwargs=kwargs,
        epoch=_number(meta.get("epoch"), int), best_prec1=best, arch=arch if isinstance(arch, str) else None)


# ------------------------------------------------------------------------------------------ mapping
def official_key_map(model: nn.Module, spec: OfficialCheckpoint, state: dict[str, Tensor]) -> dict[str, str]:
    """ffnlib state key -> official key (after `module.`), by the naming rules of the module docstring.

    `state` (the official weights) tells which classifier name and which wrapped conv1 keys are used.
    """
    counts = spec.frame_counts
    branch_norms = {name for name, m in model.named_modules() if isinstance(m, BranchNorm)}
    classifier = "new_fc." if "new_fc.weight" in state else "base_model.fc."
    mapping = {}
    for key in model.state_dict():
        parent, _, leaf = key.rpartition(".")
        owner, _, branch = parent.rpartition(".")
        if key.startswith("fc."):
            mapping[key] = classifier + leaf
        elif ".adaconv." in key:  # layerI.J.adaconv.<b>.weight
            block, _, rest = key.partition(".adaconv.")
            index, _, leaf = rest.partition(".")
            mapping[key] = f"{BACKBONE}{block}.adaconv_{counts[int(index)]}.{leaf}"
        elif owner in branch_norms:  # "<bn>.<b>.<leaf>"
            count = counts[int(branch)]
            if owner.endswith(".downsample.1"):
                mapping[key] = f"{BACKBONE}{owner[:-len('.downsample.1')]}.downsample_bn_{count}.{leaf}"
            else:
                mapping[key] = f"{BACKBONE}{owner}_{count}.{leaf}"
        elif spec.family == "ffn" and ".downsample.0." in key:
            mapping[key] = BACKBONE + key.replace(".downsample.0.", ".downsample_conv.")
        elif (spec.layout == "tsm_repo" and _STAGE.match(BACKBONE + key) and key.endswith(".conv1.weight")
              and BACKBONE + key[:-len("weight")] + "net.weight" in state):
            mapping[key] = BACKBONE + key[:-len("weight")] + "net.weight"
        else:
            mapping[key] = BACKBONE + key
    return mapping


def build_model(spec: OfficialCheckpoint, **kwargs) -> nn.Module:
    """The ffnlib model the checkpoint fits: `create_model(spec.model_name, ...)` with the keywords the
    weights imply, then `kwargs` (a keyword that contradicts the weights is an error)."""
    clash = sorted(k for k in set(kwargs) & set(spec.model_kwargs) if kwargs[k] != spec.model_kwargs[k])
    if clash:
        raise _fail(spec.source, "the weights imply " + ", ".join(f"{k}={spec.model_kwargs[k]!r}" for k in clash)
                    + "; got " + ", ".join(f"{k}={kwargs[k]!r}" for k in clash))
    if spec.model_name not in list_models():
        raise _fail(spec.source, f"holds a ResNet-{spec.depth} {spec.family.upper()}, but ffnlib has no "
                    f"{spec.model_name!r} (models: {', '.join(list_models())})")
    try:
        return create_model(spec.model_name, spec.num_classes, **{**spec.model_kwargs, **kwargs})
    except (TypeError, ValueError) as e:
        raise _fail(spec.source, f"cannot build {spec.model_name} with {spec.model_kwargs}: {e}") from e


def load_official_state_dict(model: nn.Module, spec: OfficialCheckpoint, state: dict[str, Tensor]) -> None:
    """Copy every official tensor into `model` (in place), strictly: raises OfficialCheckpointError,
    naming the keys, on a model key the file lacks, a file key the model cannot place, or a shape
    that differs; nothing is copied then."""
    mapping = official_key_map(model, spec, state)
    own = model.state_dict()
    missing = sorted(src for key, src in mapping.items()
                     if src not in state and key.rpartition(".")[2] not in OPTIONAL_LEAVES)
    unexpected = sorted(set(state) - set(mapping.values()))
    misshapen = [f"{src} {tuple(state[src].shape)} (model {key} {tuple(own[key].shape)})"
                 for key, src in mapping.items() if src in state and state[src].shape != own[key].shape]
    problems = [f"{what} {len(keys)}: {summarise_keys(keys)}" for what, keys in
                (("keys the model needs but the file lacks", missing), ("keys no model tensor takes", unexpected),
                 ("shapes that do not fit", misshapen)) if keys]
    if problems:
        raise _fail(spec.source, f"does not fit {spec.model_name} ({spec.layout}, {spec.num_classes} classes): "
                    + "; ".join(problems))
    with torch.no_grad():
        for key, src in mapping.items():
            if src in state:
                own[key].copy_(state[src])


def load_official_checkpoint(path: str | Path, **kwargs) -> nn.Module:
    """An official TSM or FFN checkpoint file as an ffnlib model, in eval mode on the CPU.

    The model is `create_model(f"{family}_resnet{depth}", num_classes, **implied, **kwargs)`, with
    family, depth, classes and FFN's frame counts detected from the keys (see the module docstring);
    `model.official` holds the `OfficialCheckpoint`. Raises OfficialCheckpointError (a ValueError)
    naming the file for a file that is not an official checkpoint or does not fit.
    """
    state, meta = read_official_file(path)
    spec = inspect_official(state, meta, str(path))
    model = build_model(spec, **kwargs)
    load_official_state_dict(model, spec, state)
    model.official = spec
    log.info("%s: %s", path, spec)
    return model.eval()

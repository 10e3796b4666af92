"""The training configuration: one flat dataclass, validated from notebook parameters or YAML.

Defaults are the official SSv2 recipe (REFERENCE.md section 5) with TSM-ResNet50. Overrides are
type-checked and unknown keys rejected, so a typo never silently trains something else. The resolved
config is saved in the run folder (`config.yaml`) and in every checkpoint.

Profiles (`configs/*.yaml`) hold a `train:` section with these fields; a plain YAML of these fields
is accepted too.

Recipe keys act in the recipes `APPLIES` names and are inert elsewhere (a notebook builds several
recipes from one profile): `fit` logs an inert key given another value than its default, and a model
folder's identity (`fit_identity`, what resuming checks) leaves inert keys out. A model's names derive
from its config: `model` (the TFD table's column: vanilla, st, proportional, mixed, finetune, ffn and
FFN's ablations ffn_no_sn / _no_wa / _no_td / _no_ws), `model_name` (its folder in a workbook run) and
`variant` (what tells models of one `model` and `train_frames` apart in the table: the mixup
probability, the frame probabilities, lam...).
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ffnlib import synthetic
from ffnlib.errors import ConfigError
from ffnlib.layouts import check_options
from ffnlib.models import ARCHITECTURES

RECIPES = ("vanilla", "ffn", "proportional", "mixed", "finetune")
RENAMED = {"eval_frame_counts": "eval_frames"}  # old key -> current key (configs saved in checkpoints)
LR_SCHEDULES = ("step", "cosine")
AMP_MODES = ("auto", "off", "bf16", "fp16")
# FFN's parts (the paper's Table 4), each a config key: `model_kwargs` may not hold them. The suffix
# names the ablation in `model` (ffn_no_sn ...), in this order, when the part is switched off.
FFN_SWITCHES = {"private_bn": "_no_sn", "adaconv": "_no_wa", "distill": "_no_td", "weight_sharing": "_no_ws"}
# Recipe keys and the recipes they act in; elsewhere they are inert.
APPLIES = {
    "num_frames": ("vanilla", "finetune"),
    "frame_counts": ("ffn", "proportional", "mixed"),
    "frame_probs": ("proportional",),
    "lam": ("ffn",),
    **{key: ("ffn",) for key in FFN_SWITCHES},
    "mixup_prob": ("mixed",),
    "mixup_alpha": ("mixed",),
    "init_from": ("finetune",),
}
# The frame counts a recipe's folder name leaves unsaid (`model_name`): FFN's 4/8/16, the baselines' pair.
DEFAULT_FRAME_COUNTS = {"ffn": (4, 8, 16), "proportional": (4, 16), "mixed": (4, 16)}
OLD_MIXED = ("was trained with the recipe once called 'mixed' (every T of frame_counts for the same videos, "
             "cross-entropies summed), which is not the paper's Mixed Sampling that recipe 'mixed' trains now; "
             "delete its model folder, or train it again with --restart (fit(restart=True)); the old recipe is "
             "recipe ffn with private_bn, adaconv and distill false")


DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"  # what `device` may say


def is_device_name(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value) is not None


def read_yaml_mapping(path: Path, what: str) -> dict:
    """The mapping a YAML file holds (empty file: {}); ConfigError naming the file when it cannot be read,
    is not YAML, or holds something else than a mapping of `what`."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read a YAML file ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {what}, got {type(data).__name__}")
    return data


@dataclass
class TrainConfig:
    # what to train
    recipe: str = "vanilla"  # vanilla (one T; separated training = vanilla at another T) | ffn | proportional | mixed | finetune
    num_frames: int = 16  # T of vanilla, and the T finetune trains at
    frame_counts: tuple = (4, 8, 16)  # T set of ffn and proportional; mixed: the pair (T mixed in, T trained at)
    frame_probs: tuple = ()  # proportional: probability of each T in frame_counts (empty: uniform); the paper's varrho = that of the larger of two
    lam: float = 1.0  # ffn: weight of the KL distillation terms
    distill: bool = True  # ffn: temporal distillation; False: CE on every branch's output, no KL (Table 4, w/o TD)
    private_bn: bool = True  # ffn: private BatchNorms per T; False: shared (Table 4, w/o Specialized Normalization)
    adaconv: bool = True  # ffn: the depthwise adaconv per block and T; False: none (Table 4, w/o Weight Alteration)
    weight_sharing: bool = True  # ffn: convs shared by the T; False: a whole network per T (Table 4, w/o Weight Sharing)
    mixup_prob: float = 0.5  # mixed: the paper's rho, the probability that a step mixes the low-T clip into the high-T one
    mixup_alpha: float = 1.0  # mixed: each video's mix weight ~ Beta(alpha, alpha) (1.0: uniform on [0, 1]; the paper does not say)
    init_from: str = "vanilla_16f"  # finetune: the model fine-tuned (a model folder of the same run, a model folder path, or a .pt); its best.pt
    # data
    dataset: str = "ssv2"  # layout of the data: ssv2 | ssv1 | frames | kinetics | hmdb51 | video_list (ffnlib.layouts)
    data_root: str = ""  # annotation folder; "" = the built-in synthetic dataset (in the ssv2 or ssv1 layout)
    video_dir: str = ""  # video (or frame-folder) folder; "" = the layout's default beside the annotations
    frame_template: str = ""  # frame file names of ssv1 / frames, e.g. "{:06d}.jpg"; "" = the layout's own
    train_split: str = ""  # training split (frames, video_list: the list file); "" = the layout's own
    val_split: str = ""  # validation split; "" = the layout's own (ffnlib.layouts.DEFAULT_SPLITS)
    fold: int = 1  # hmdb51: the official split 1, 2 or 3
    skip_missing_videos: bool = False  # kinetics: leave out missing clips (counted, listed) instead of failing
    builtin: dict = field(default_factory=dict)  # knobs for ffnlib.synthetic.prepare (built-in data only)
    frame_size: int = 224  # side of the square crop fed to the network
    resize_size: int = 256  # test: shorter side resized to this, then centre crop frame_size
    num_workers: int = 8  # data-loader processes per training process (0: decode in the training process)
    # model
    arch: str = "resnet50"  # backbone; the recipe picks the wrapper: tsm_<arch> or ffn_<arch>
    model_kwargs: dict = field(default_factory=dict)  # extra create_model keyword arguments
    pretrained: str = ""  # path to a torchvision-format ResNet state dict, "imagenet", or ""
    dropout: float = 0.5  # before the classifier, on the pooled features of every frame
    # optimisation
    epochs: int = 50  # training epochs (each steps_per_epoch steps)
    steps_per_epoch: int = 0  # 0 = one pass over the training split
    batch_size: int = 32  # global batch (split across DDP ranks); with batch_per_rank, the batch lr is given for
    batch_per_rank: int = 0  # 0: batch_size is split over the ranks; N: N videos per rank, global batch and lr scale linearly
    sync_bn: bool = False  # DDP on CUDA: BatchNorm statistics over all ranks (SyncBatchNorm); official: per GPU
    lr: float = 0.01  # SGD learning rate at the schedule's peak (for batch_size; scale it with the batch)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # L2 on convolution and fc weights; none on BatchNorm and biases
    fc_lr_mult: float = 5.0  # fc weight lr multiplier
    fc_bias_lr_mult: float = 10.0  # fc bias lr multiplier (no decay)
    lr_schedule: str = "step"  # step | cosine
    lr_steps: tuple = (20, 40)  # step: epochs at which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1  # step: the lr factor at each of lr_steps
    warmup_steps: int = 0  # linear warm-up from 0 over this many steps
    clip_grad_norm: float = 20.0  # 0 = off; works under AMP (gradients unscaled first)
    # hardware
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # auto (bf16 on CUDA when supported, else fp16 + GradScaler; off elsewhere) | off | bf16 | fp16
    channels_last: bool = False  # the model in channels_last memory format (faster convolutions on GPUs)
    compile: bool = False  # torch.compile the training step's model
    threads: int = 0  # torch.set_num_threads on CPU; 0 = leave torch's default
    deterministic: bool = False  # torch's deterministic algorithms (exact resumes; slower on GPUs)
    seed: int = 0  # the initialisation, the data order and every augmentation draw
    # evaluation and checkpoints
    eval_frames: tuple = (4, 8, 16)  # T of the validation at each epoch end (best.pt: by the largest)
    val_max_videos: int = 0  # 0 = the whole validation split
    save_every_steps: int = 0  # also write last.pt every N steps (0 = only at epoch ends)
    keep_epoch_checkpoints: bool = False  # also keep epoch_N.pt

    # ---------------------------------------------------------------- construction and checks
    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        """Build from a dict: types checked, unknown keys rejected, `source` named in every error.
        Keys of older checkpoints are read under their current names (RENAMED)."""
        values = {RENAMED.get(k, k): v for k, v in values.items()}
        known = cls.fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown config key(s) {unknown}; known keys: {sorted(known)}")
        hints = typing.get_type_hints(cls)
        converted = {k: _coerce(k, v, hints[k], source) for k, v in values.items()}
        config = cls(**converted)
        config.check(source)
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict | None = None) -> "TrainConfig":
        """Read a config YAML or a profile's `train:` section, then apply `overrides`."""
        path = Path(path)
        data = read_yaml_mapping(path, "config keys")
        if "train" in data and isinstance(data["train"], dict):
            data = data["train"]
        return cls.from_dict({**data, **(overrides or {})}, source=str(path))

    def replace(self, **changes) -> "TrainConfig":
        return type(self).from_dict({**self.to_dict(), **changes}, source="config override")

    def to_dict(self) -> dict:
        """Plain types only (tuples become lists), as stored in YAML and checkpoints."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def check(self, source: str = "config") -> None:
        """Cross-field checks; raises ConfigError naming the key and what was expected."""

        def fail(key, expected):
            raise ConfigError(f"{source}: {key}={getattr(self, key)!r}: expected {expected}")

        for f in dataclasses.fields(self):  # lr=.nan would train nothing and fail late
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                fail(f.name, "a finite number")
        if self.arch not in ARCHITECTURES:
            fail("arch", f"one of {sorted(ARCHITECTURES)}")
        if not is_device_name(self.device):
            fail("device", DEVICE_NAMES)
        if self.seed < 0:
            fail("seed", "a non-negative integer")
        try:
            synthetic.Design.from_knobs(**self.builtin)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: builtin={self.builtin!r}: {e}") from None

        if self.recipe not in RECIPES:
            fail("recipe", f"one of {RECIPES}")
        if self.lr_schedule not in LR_SCHEDULES:
            fail("lr_schedule", f"one of {LR_SCHEDULES}")
        if self.amp not in AMP_MODES:
            fail("amp", f"one of {AMP_MODES}")
        try:  # the layouts module says what each layout takes
            check_options(self.dataset, self.frame_template, self.fold, self.skip_missing_videos)
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
        for key in ("num_frames", "frame_size", "resize_size", "epochs", "batch_size"):
            if getattr(self, key) < 1:
                fail(key, "a positive integer")
        if self.resize_size < self.frame_size:
            fail("resize_size", f">= frame_size ({self.frame_size})")
        if not self.frame_counts or any(t < 1 for t in self.frame_counts):
            fail("frame_counts", "a non-empty tuple of positive frame counts")
        if len(set(self.frame_counts)) != len(self.frame_counts):
            fail("frame_counts", "distinct frame counts")
        if self.recipe == "ffn" and len(self.frame_counts) < 2:
            fail("frame_counts", "at least two frame counts for the ffn recipe")
        if self.recipe == "mixed" and len(self.frame_counts) != 2:
            fail("frame_counts", "two frame counts for the mixed recipe: the clip mixed in (the smaller T) and "
                                 "the clip trained on (the larger)")
        if not 0 <= self.mixup_prob <= 1:
            fail("mixup_prob", "a probability in [0, 1]")
        if self.mixup_alpha <= 0:
            fail("mixup_alpha", "a positive number (the Beta distribution's alpha)")
        if self.recipe == "finetune" and not self.init_from:
            fail("init_from", "the model to fine-tune: a model folder name of the run (vanilla_16f), a model "
                              "folder or a checkpoint path")
        for key in sorted(set(self.model_kwargs) & set(FFN_SWITCHES)):
            raise ConfigError(f"{source}: model_kwargs={self.model_kwargs!r}: {key} is a config key of its own "
                              f"(set `{key}: {str(self.model_kwargs[key]).lower()}` beside recipe, not in model_kwargs)")
        if self.recipe == "ffn" and not self.weight_sharing:
            for key in ("private_bn", "adaconv"):
                if not getattr(self, key):
                    fail(key, "True (its default) with weight_sharing=False: every frame count has its own "
                              "network, its own BatchNorms and no adaconv")
        if self.frame_probs:
            if self.recipe == "proportional" and len(self.frame_probs) != len(self.frame_counts):
                fail("frame_probs", f"one probability per frame count {self.frame_counts}")
            if any(p < 0 for p in self.frame_probs) or abs(sum(self.frame_probs) - 1) > 1e-6:
                fail("frame_probs", "non-negative probabilities summing to 1")
        if not self.eval_frames or any(t < 1 for t in self.eval_frames):
            fail("eval_frames", "a non-empty tuple of positive frame counts")
        for key in ("lr", "lam", "clip_grad_norm", "weight_decay", "momentum", "dropout"):
            if getattr(self, key) < 0:
                fail(key, "a non-negative number")
        if not 0 <= self.dropout < 1:
            fail("dropout", "a probability in [0, 1)")
        for key in ("steps_per_epoch", "warmup_steps", "num_workers", "threads", "val_max_videos",
                    "save_every_steps", "batch_per_rank"):
            if getattr(self, key) < 0:
                fail(key, "a non-negative integer")

    # ---------------------------------------------------------------- derived values
    @classmethod
    def from_saved(cls, values: dict, source: str = "config") -> "TrainConfig":
        """A config as a checkpoint or a model folder's config.yaml holds it (every key of its time):
        keys renamed since (RENAMED) and FFN's switches once kept in `model_kwargs` read under their
        current names; a model of the old 'mixed' recipe (before `mixup_prob` existed) is refused."""
        values = {RENAMED.get(k, k): v for k, v in values.items()}
        if values.get("recipe") == "mixed" and "mixup_prob" not in values:
            raise ConfigError(f"{source} {OLD_MIXED}")
        kwargs = dict(values.get("model_kwargs") or {})
        moved = {key: kwargs.pop(key) for key in FFN_SWITCHES if key in kwargs}
        if moved:
            values = {**values, "model_kwargs": kwargs, **moved}
        return cls.from_dict(values, source=source)

    def applies(self, key: str) -> bool:
        """Whether config key `key` acts in this config's recipe (keys not in APPLIES act in every one;
        lam only with distill)."""
        if key == "lam" and not self.distill:
            return False
        return self.recipe in APPLIES.get(key, (self.recipe,))

    def inert(self) -> list[str]:
        """The recipe keys set to another value than their default that this recipe ignores."""
        defaults = type(self)()
        return [key for key in APPLIES if not self.applies(key) and getattr(self, key) != getattr(defaults, key)]

    def fit_identity(self, keys) -> dict:
        """The values of `keys` (FIT_KEYS) that decide what this config trains: inert keys left out."""
        return {key: _plain(getattr(self, key)) for key in keys if self.applies(key)}

    @property
    def network(self) -> str:
        """The `create_model` name: the recipe picks the wrapper, `arch` the backbone (tsm_small, ffn_resnet50)."""
        return f"{'ffn' if self.recipe == 'ffn' else 'tsm'}_{self.arch}"

    @property
    def train_frame_counts(self) -> tuple:
        """The frame counts the model is trained on (mixed: the pair, although the network sees the larger only)."""
        return (self.num_frames,) if self.recipe in ("vanilla", "finetune") else tuple(self.frame_counts)

    @property
    def train_frames(self) -> str:
        """`train_frame_counts` as the TFD table writes them: "16", "4/8/16"."""
        return "/".join(map(str, self.train_frame_counts))

    @property
    def probabilities(self) -> tuple:
        """proportional: the probability of each T of `frame_counts` (`frame_probs`, or uniform)."""
        return tuple(self.frame_probs) or tuple(1 / len(self.frame_counts) for _ in self.frame_counts)

    @property
    def model(self) -> str:
        """The model's name in the TFD table: vanilla at 16F, st at another T; ffn, with the suffix of each
        part switched off (ffn_no_sn, ffn_no_wa, ffn_no_td, ffn_no_ws); else the recipe."""
        if self.recipe == "vanilla":
            return "vanilla" if self.num_frames == 16 else "st"
        if self.recipe == "ffn":
            return "ffn" + "".join(suffix for key, suffix in FFN_SWITCHES.items() if not getattr(self, key))
        return self.recipe

    @property
    def model_name(self) -> str:
        """The model's folder in a workbook run (`<run_dir>/models/<model_name>`): vanilla_16f, st_4f,
        finetune_4f; `model` for the others, then the frame counts where they are not the recipe's
        usual ones (ffn_4-16, ffn_no_td_4-8-12-16), proportional's probabilities where not uniform
        (proportional_p0.25-0.75) and mixed's rho and alpha where not the defaults (mixed_rho0.75)."""
        if self.recipe in ("vanilla", "finetune"):
            return f"{self.model}_{self.num_frames}f"
        name = self.model
        if tuple(sorted(self.frame_counts)) != DEFAULT_FRAME_COUNTS[self.recipe]:
            name += "_" + "-".join(map(str, sorted(self.frame_counts)))
        if self.recipe == "proportional" and self.frame_probs and len(set(self.probabilities)) > 1:
            name += "_p" + "-".join(f"{p:g}" for p in self.probabilities)
        if self.recipe == "mixed":
            defaults = type(self)()
            if self.mixup_prob != defaults.mixup_prob:
                name += f"_rho{self.mixup_prob:g}"
            if self.mixup_alpha != defaults.mixup_alpha:
                name += f"_alpha{self.mixup_alpha:g}"
        return name

    @property
    def variant(self) -> str:
        """What tells this model apart from others of the same `model` and `train_frames` in the TFD
        table ("" for none): mixed's mixup_prob (and mixup_alpha when not 1), proportional's frame
        probabilities, finetune's source, an FFN's lam when not 1."""
        parts = []
        if self.recipe == "mixed":
            parts.append(f"mixup_prob={self.mixup_prob:g}")
            if self.mixup_alpha != 1.0:
                parts.append(f"mixup_alpha={self.mixup_alpha:g}")
        elif self.recipe == "proportional":
            parts.append("frame_probs=" + "/".join(f"{p:g}" for p in self.probabilities))
        elif self.recipe == "finetune":
            parts.append(f"init_from={self.init_from}")
        elif self.applies("lam") and self.lam != 1.0:
            parts.append(f"lam={self.lam:g}")
        return ",".join(parts)

    @property
    def data(self) -> str:
        """The data a model learns from, as the TFD table names it: "builtin" (the built-in synthetic
        data, in whichever layout) or the layout of `data_root` (ssv2, ssv1, kinetics...)."""
        return self.dataset if self.data_root else "builtin"


def parse_overrides(pairs: list[str]) -> dict:
    """["lr=0.1", "frame_counts=[4,16]"] -> {"lr": 0.1, "frame_counts": [4, 16]} (values read as YAML;
    the `--set KEY=VALUE` options of the command lines)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""  # data_root= : empty
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {pair!r}: the value is not YAML ({e.problem})") from None
    return out


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _coerce(key: str, value, hint, source: str):
    """`value` checked against the field's type; lists become tuples, ints may stand for floats."""
    origin = typing.get_origin(hint) or hint

    def fail():
        raise ConfigError(f"{source}: {key}={value!r}: expected {getattr(origin, '__name__', hint)}")

    if origin is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if origin is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if origin is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail()
        return float(value)
    if origin is str:
        if not isinstance(value, (str, Path)):
            fail()
        return str(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            fail()
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{source}: {key}={value!r}: expected a list of numbers")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        return dict(value)
    raise TypeError(f"unsupported config field type {hint} for {key}")

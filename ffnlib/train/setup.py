"""Everything a training step needs, built one way for `fit` and the benchmarks: the model from a
config, its optimiser, autocast and loss scaling, and the module the step runs (`Trainee`); and the
trained model of a model folder (`load_trained`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ffnlib.errors import ConfigError
from ffnlib.models import create_model
from ffnlib.paths import project_path
from ffnlib.runs import ModelRun

from . import distributed as dist_utils
from .checkpoint import CheckpointError, load_checkpoint, load_model_state
from .config import TrainConfig
from .optim import make_optimizer
from .step import autocast_dtype, step_module

log = logging.getLogger(__name__)


def model_kwargs(config: TrainConfig) -> dict:
    """The architecture keywords `create_model(config.network, ...)` gets from `config`, dropout apart:
    `model_kwargs`, and for an FFN its frame counts and switches (`weight_sharing=False` alone: a
    network per T has no shared weights to alter or normalise apart)."""
    kwargs = dict(config.model_kwargs)
    if config.recipe == "ffn":
        kwargs.setdefault("frame_counts", tuple(config.frame_counts))
        if config.weight_sharing:
            kwargs.update(private_bn=config.private_bn, adaconv=config.adaconv)
        else:
            kwargs["weight_sharing"] = False
    return kwargs


def check_model(config: TrainConfig, num_classes: int = 2) -> None:
    """Build `config`'s network on the meta device (no memory, no time): an unknown `model_kwargs`
    key or a bad value is a ConfigError now, before any data is opened."""
    try:
        with torch.device("meta"):
            create_model(config.network, num_classes, dropout=config.dropout, **model_kwargs(config))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"arch={config.arch!r}, model_kwargs={config.model_kwargs!r}: {e}") from None


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    """`config`'s network for `num_classes` classes, from its `pretrained` weights when given (not for
    finetune, whose weights come from the model it fine-tunes: `init_finetune`)."""
    kwargs = dict(dropout=config.dropout, **model_kwargs(config))
    pretrained = config.pretrained if config.recipe != "finetune" else None
    pretrained = pretrained or None
    if pretrained and pretrained != "imagenet":
        pretrained = project_path(pretrained)
    model = create_model(config.network, num_classes, pretrained=pretrained, **kwargs)
    report = getattr(model, "load_report", None)
    if report is not None:
        log.info("%s", report)
    return model


def configure_torch(config: TrainConfig, device: torch.device, world: dist_utils.World) -> None:
    """Threads, determinism and the global seed of a training process, as `config` asks."""
    if config.threads and device.type == "cpu":
        torch.set_num_threads(config.threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed * 1000 + world.rank)


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """`model` with every BatchNorm a SyncBatchNorm (statistics over all ranks of the batch; `sync_bn`).
    Each module is converted on its own, so an FFN's per-branch BNs stay private to their branch; the
    parameters, buffers and state-dict keys stay the same (checkpoints load into the plain model)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


@dataclass
class Trainee:
    """A model set up for training as `fit` sets it up: `model` keeps the weights (checkpoints save
    it), `step_model` is what `train_step` runs (in DDP, compiled, as the config asks)."""

    config: TrainConfig
    model: nn.Module
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    device: torch.device

    @property
    def frames_per_clip(self) -> int | None:
        """Frames the network sees per video in one step: every frame count of an FFN sample, the larger
        T of mixed (the smaller one is mixed into it), the one T of vanilla and finetune; None for
        proportional, whose T changes from step to step (each batch's clip says it)."""
        if self.config.recipe == "proportional":
            return None
        if self.config.recipe == "mixed":
            return max(self.config.frame_counts)
        return sum(self.config.train_frame_counts)

    @classmethod
    def build(cls, config: TrainConfig, num_classes: int, device: torch.device,
              world: dist_utils.World = dist_utils.World(), *, fused: bool = False,
              compile_mode: str | None = None) -> "Trainee":
        model = build_model(config, num_classes).to(device)
        if config.sync_bn and world.distributed:
            model = sync_batchnorm(model)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        optimizer = make_optimizer(model, config, fused=fused)
        amp = autocast_dtype(config, device)
        scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
        step_model = step_module(model, config, world, device, compile_mode=compile_mode)
        return cls(config, model, step_model, optimizer, scaler, amp, device)


def load_trained(model_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu"):
    """The model trained in `model_dir` (its checkpoint `checkpoint`: best, final or last) and its
    config, in eval mode."""
    run = ModelRun(model_dir)
    path = run.checkpoint(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; train {run.name} into {run.root.parent.parent} first "
                              f"(notebooks 04 and 07, or python -m ffnlib.train), or check run_dir")
    return trained_from_state(load_checkpoint(path), path, device)


def trained_from_state(state: dict, source: str | Path, device: str | torch.device = "cpu"):
    """The model and config of a checkpoint already read (`source` names it in errors), in eval mode."""
    config = TrainConfig.from_saved(state["config"], source=str(source))
    model = build_model(config.replace(pretrained=""), state["num_classes"])
    load_model_state(model, state["model"], str(source))
    return model.to(device).eval(), config


# ------------------------------------------------------------------------------------------ fine-tuning
def finetune_source(config: TrainConfig, model_dir: str | Path) -> Path:
    """The checkpoint the finetune recipe starts from: `init_from` is a model folder of the workbook
    run `model_dir` belongs to (vanilla_16f: its best.pt), a model folder path, or a .pt file. A model
    folder must have finished training (final.pt): a sweep that starts the fine-tuning before its
    source has finished would otherwise start from an early best.pt. Raises ConfigError naming what
    is missing."""
    source = config.init_from
    where = f"init_from={source!r}"
    if source.endswith(".pt"):
        path = project_path(source)
        if not path.is_file():
            raise ConfigError(f"{where}: no checkpoint file {path}")
        return path
    if "/" in source or source in (".", ".."):
        run = ModelRun(project_path(source))
    else:
        run_dir = ModelRun(model_dir).run_dir
        if run_dir is None:
            raise ConfigError(f"{where} names a model of the workbook run, but {model_dir} is not in a run's "
                              f"models/ folder: give init_from as a model folder or a checkpoint path")
        run = ModelRun(Path(run_dir) / "models" / source)
    if not run.final.is_file():
        state = "is still training (no checkpoints/final.pt yet)" if run.last.is_file() else "is not trained"
        raise ConfigError(f"{where}: {run.root} {state}: train it first (notebook 04, or python -m "
                          f"ffnlib.train), then fine-tune")
    if not run.best.is_file():
        raise ConfigError(f"{where}: {run.root} has no checkpoints/best.pt to fine-tune")
    return run.best


def init_finetune(model: nn.Module, config: TrainConfig, path: Path, num_classes: int) -> dict:
    """Load the weights of checkpoint `path` (see `finetune_source`) into `model`, the network of the
    finetune `config`: the source must be the same network for the same classes. Returns what the
    fine-tuning starts from ({"path", "checkpoint_id", "step"}) for the checkpoints to record."""
    state = load_checkpoint(path)
    source = TrainConfig.from_saved(state["config"], source=str(path))
    if source.network != config.network or source.model_kwargs != config.model_kwargs:
        raise ConfigError(f"init_from={config.init_from!r}: {path} holds a {source.network} with model_kwargs "
                          f"{source.model_kwargs}, not the {config.network} with {config.model_kwargs} of this config")
    if state["num_classes"] != num_classes:
        raise ConfigError(f"init_from={config.init_from!r}: {path} has {state['num_classes']} classes, the data "
                          f"{num_classes}")
    load_model_state(model, state["model"], str(path))
    log.info("fine-tuning from %s (step %d)", path, state["step"])
    return {"path": str(path), "checkpoint_id": str(state.get("checkpoint_id", "")), "step": int(state["step"])}

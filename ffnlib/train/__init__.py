"""Training and evaluation: config, the fit loop, checkpoints, evaluation at any T, the command line.

    python -m ffnlib.train --config configs/smoke.yaml --run-dir runs/smoke [--set key=value ...]
    torchrun --nproc_per_node=N -m ffnlib.train --config ...     (DDP, same loop)
"""
from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from .config import TrainConfig
from .distributed import resolve_device
from .evaluate import Evaluation, evaluate, recalibrate_bn
from .loop import (REQUEUE_EXIT_CODE, FitResult, NonFiniteLoss, Preempted, RunFolder, build_model, fit,
                   load_trained, open_splits, read_metrics)

__all__ = [
    "REQUEUE_EXIT_CODE", "CheckpointError", "Evaluation", "FitResult", "NonFiniteLoss", "Preempted",
    "RunFolder", "TrainConfig", "build_model", "evaluate", "fit", "load_checkpoint", "load_model_state",
    "load_trained", "open_splits", "read_metrics", "recalibrate_bn", "resolve_device", "save_checkpoint",
]

"""Training and evaluation: config, the fit loop, checkpoints, evaluation at any T, the command line.

    python -m ffnlib.train --config configs/smoke.yaml --run-dir runs/smoke [--set key=value ...]
    torchrun --nproc_per_node=N -m ffnlib.train --config ...     (DDP, same loop)
    torchrun --nnodes=N --nproc-per-node=G --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT -m ffnlib.train ...
                                                                  (several nodes, the same command on each)

Modules: `config` (TrainConfig), `data` (splits, views, batches, the loader), `step` (one training step
of each recipe), `setup` (the model, optimiser and step module `fit` and the benchmarks share; trained
models), `loop` (`fit`), `checkpoint` (the format), `evaluate`, `optim`, `distributed`, `signals`.
"""
from .checkpoint import FIT_KEYS, CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from .config import TrainConfig
from .data import epoch_batches, make_loader, open_split, open_splits, steps_in_epoch, train_view
from .distributed import World, resolve_device
from .evaluate import Evaluation, evaluate, recalibrate_bn
from .loop import FitResult, fit
from .setup import Trainee, build_model, check_model, load_trained, model_kwargs, trained_from_state
from .signals import REQUEUE_EXIT_CODE, Preempted
from .step import NonFiniteLoss, add_step, autocast_dtype, backward_per_clip, compute_loss, train_step

__all__ = [
    "FIT_KEYS", "REQUEUE_EXIT_CODE", "CheckpointError", "Evaluation", "FitResult", "NonFiniteLoss", "Preempted",
    "Trainee", "TrainConfig", "World", "add_step", "autocast_dtype", "backward_per_clip", "build_model",
    "check_model", "compute_loss", "epoch_batches", "evaluate", "fit", "load_checkpoint", "load_model_state",
    "load_trained", "make_loader", "model_kwargs", "open_split", "open_splits", "recalibrate_bn", "resolve_device",
    "save_checkpoint", "steps_in_epoch", "train_step", "train_view", "trained_from_state",
]

"""Checkpoints: tensors and plain types only, written atomically, read with weights_only=True.

A checkpoint is a dict: model, optimizer, scaler (state dicts), scheduler ({"name", "step"}), epoch
(epochs completed), step (optimiser steps done), batch_in_epoch (batches of the current epoch done,
for a checkpoint taken mid-epoch), partial (the epoch's running sums so far), best ({"top1_<T>": ...}),
rng (torch CPU/CUDA generator states), config (TrainConfig.to_dict()), format.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ffnlib.paths import write_atomic

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or does not fit the model or config it is loaded into."""


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` through a temporary file in the same folder, then rename over it.

    A kill at any moment leaves either the previous file or the new one, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda f: torch.save({**state, "format": FORMAT}, f), fsync=True)


def load_checkpoint(path: str | Path, map_location="cpu", mmap: bool = False) -> dict:
    """The state `save_checkpoint` wrote. With `mmap`, tensors are read from the file only when used:
    for a look at the step, the seed or the number of classes of a large checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an ffnlib checkpoint (expected a dict with a 'model' entry)")
    return state


def load_model_state(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Load `state_dict` strictly; on a mismatch raise naming the missing, unexpected and misshapen keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshapen = sorted(f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                       for k in set(own) & set(state_dict)
                       if hasattr(state_dict[k], "shape") and state_dict[k].shape != own[k].shape)
    if missing or unexpected or misshapen:
        def show(keys):
            return f"{keys[:5]}{' ...' if len(keys) > 5 else ''} ({len(keys)})"
        parts = [f"missing {show(missing)}" if missing else "",
                 f"unexpected {show(unexpected)}" if unexpected else "",
                 f"shape mismatch {show(misshapen)}" if misshapen else ""]
        raise CheckpointError(f"{source} does not fit the model {type(model).__name__}: "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict(state_dict)

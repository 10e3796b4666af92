"""Temporal Frequency Deviation: every trained model evaluated at every frame count.

A workbook run folder holds its trained models under `models/<name>/` (vanilla_16f, st_4f, ffn,
proportional, mixed; see `TrainConfig.run_name`). `evaluate_model_dir` evaluates one of them at a
list of T on its own validation split and caches the result beside its checkpoints
(`eval_<checkpoint>.csv`, `eval_<checkpoint>_per_class.csv`), so that notebooks 05 and 08 and a
second `make demo` never evaluate the same checkpoint at the same T twice.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import torch

from ffnlib.train import Evaluation, RunFolder, evaluate, load_checkpoint, load_trained, open_splits

log = logging.getLogger(__name__)


def model_dirs(run_dirs: Iterable[str | Path], checkpoint: str = "best") -> list[Path]:
    """The trained model folders (`models/*` holding `checkpoints/<checkpoint>.pt`) of workbook runs."""
    found = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder")
        found += sorted(d for d in (run_dir / "models").glob("*")
                        if (d / "checkpoints" / f"{checkpoint}.pt").exists())
    return found


def _cache_paths(model_dir: Path, checkpoint: str) -> tuple[Path, Path]:
    return model_dir / f"eval_{checkpoint}.csv", model_dir / f"eval_{checkpoint}_per_class.csv"


def evaluate_model_dir(model_dir: str | Path, frame_counts: Sequence[int], checkpoint: str = "best", *,
                       batch_size: int = 32, num_workers: int = 0, device: str = "cpu",
                       max_videos: int = 0, progress: bool = True) -> Evaluation:
    """Top-1/top-5 of the model trained in `model_dir` at each T in `frame_counts` (cached).

    The table carries: model (vanilla, st, ffn, proportional, mixed), train_frames ("16", "4/8/16"),
    eval_frames, top1, top5, n, seed, step (of the checkpoint) and run (the model folder's name).
    """
    model_dir = Path(model_dir)
    path = RunFolder(model_dir).checkpoints / f"{checkpoint}.pt"
    step = load_checkpoint(path)["step"]
    table_path, per_class_path = _cache_paths(model_dir, checkpoint)
    cached = Evaluation(pd.DataFrame(), pd.DataFrame())
    if table_path.exists() and per_class_path.exists():
        table, per_class = pd.read_csv(table_path), pd.read_csv(per_class_path, keep_default_na=False,
                                                                na_values=[""])
        keep = (table["step"] == step) & (table["max_videos"] == max_videos)
        cached = Evaluation(table[keep], per_class[per_class["eval_frames"].isin(table[keep]["eval_frames"])])
    todo = [t for t in frame_counts if t not in set(cached.table.get("eval_frames", []))]
    if todo:
        model, config = load_trained(model_dir, checkpoint, device=device)
        _, val = open_splits(config)
        fresh = evaluate(model, val, todo, frame_size=config.frame_size, resize_size=config.resize_size,
                         batch_size=batch_size, num_workers=num_workers, device=torch.device(device),
                         max_videos=max_videos, model_name=config.table_name,
                         train_frames="/".join(map(str, config.train_frame_counts)), progress=progress)
        fresh.table = fresh.table.assign(seed=config.seed, step=step, max_videos=max_videos, run=model_dir.name)
        cached = Evaluation(pd.concat([cached.table, fresh.table], ignore_index=True),
                            pd.concat([cached.per_class, fresh.per_class], ignore_index=True))
        cached.table.sort_values("eval_frames").to_csv(table_path, index=False)
        cached.per_class.sort_values(["eval_frames", "label"]).to_csv(per_class_path, index=False)
    wanted = list(frame_counts)
    table = cached.table[cached.table["eval_frames"].isin(wanted)].sort_values("eval_frames")
    per_class = cached.per_class[cached.per_class["eval_frames"].isin(wanted)]
    return Evaluation(table.reset_index(drop=True), per_class.sort_values(["eval_frames", "label"])
                      .reset_index(drop=True))

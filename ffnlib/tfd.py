"""Temporal Frequency Deviation: every trained model evaluated at every frame count.

A workbook run (`ffnlib.runs.WorkbookRun`) holds its trained models under `models/<model_name>/`
(vanilla_16f, st_4f, ffn, proportional, mixed, ...; see `TrainConfig.model_name`). `evaluate_model_dir`
evaluates one of them at a list of T on its own validation split and caches the result beside its
checkpoints (`ModelRun.evaluation_cache`), keyed by the checkpoint's id, so that notebooks 05, 08 and 09
and a second `make demo` never evaluate the same weights at the same T twice, and a checkpoint
replaced by other weights is evaluated afresh. `evaluate_ensemble` does the same for the paper's
Ensemble baseline, built from a run's ST models (not trained; cached in `<run_dir>/ensembles/`).

Notebooks 08 and 09 build their tables from any set of workbook runs (one per seed):

    result = collect(run_dirs, eval_frames)      every model (and ensemble) of every run, evaluated or read back
    ffnlib.tables                                the tables: long, summarised, the study's, the paper's
    with_gmacs(result.table), class_tfd(...)     compute per clip; per-class drop from 16F to 4F
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from ffnlib.models import Ensemble
from ffnlib.paths import file_digest, write_text_atomic
from ffnlib.runs import ModelRun, RunFolderError, WorkbookRun
from ffnlib.tables import sort_models, summarize  # noqa: F401  (summarize: the figures' import, ffnlib.plots.tfd)
from ffnlib.train import (Evaluation, TrainConfig, evaluate, load_checkpoint, model_kwargs, open_splits,
                          resolve_device, trained_from_state)

log = logging.getLogger(__name__)

ENSEMBLE_FRAMES = (4, 8, 16)  # the ST models the paper's Ensemble averages (Table 1)


def checkpoint_id(state: dict, path: Path) -> str:
    """The id `save_checkpoint` wrote into the checkpoint, or (an older file) a hash of its bytes."""
    if state.get("checkpoint_id"):
        return str(state["checkpoint_id"])
    return f"sha1:{file_digest(path, 'sha1')}"


def _cached(run: ModelRun, checkpoint: str, key: str, max_videos: int, eval_frames: Sequence[int],
            compute: Callable[[list[int]], Evaluation]) -> Evaluation:
    """The evaluation of `run` at `eval_frames` from its cache (rows of checkpoint id `key` and the same
    `max_videos`), `compute(missing T)` for the rest, written back (under the folder's lock)."""
    table_path, per_class_path = run.evaluation_cache(checkpoint)
    cached = Evaluation(pd.DataFrame(), pd.DataFrame())
    if table_path.exists() and per_class_path.exists():
        table = pd.read_csv(table_path, dtype={"train_frames": str, "checkpoint_id": str})  # "16" stays a string
        per_class = pd.read_csv(per_class_path, keep_default_na=False, na_values=[""])
        keep = (table.get("checkpoint_id") == key) & (table["max_videos"] == max_videos)
        cached = Evaluation(table[keep], per_class[per_class["eval_frames"].isin(table[keep]["eval_frames"])])
    missing = [t for t in eval_frames if t not in set(cached.table.get("eval_frames", []))]
    if missing:
        with run.lock("evaluation"):
            fresh = compute(missing)
            cached = Evaluation(pd.concat([cached.table, fresh.table], ignore_index=True),
                                pd.concat([cached.per_class, fresh.per_class], ignore_index=True))
            # per-class rows first: a kill between the two leaves a table without the new T, which are redone
            write_text_atomic(per_class_path, cached.per_class.sort_values(["eval_frames", "label"]).to_csv(index=False))
            write_text_atomic(table_path, cached.table.sort_values("eval_frames").to_csv(index=False))
    wanted = list(eval_frames)
    table = cached.table[cached.table["eval_frames"].isin(wanted)].sort_values("eval_frames")
    per_class = cached.per_class[cached.per_class["eval_frames"].isin(wanted)]
    return Evaluation(table.reset_index(drop=True), per_class.sort_values(["eval_frames", "label"])
                      .reset_index(drop=True))


def _names(config: TrainConfig) -> dict:
    """The columns that name a model in the tables, from its config (`ffnlib.tables.KEYS` and seed)."""
    return {"model": config.model, "train_frames": config.train_frames, "variant": config.variant,
            "data": config.data, "arch": config.arch, "seed": config.seed}


def evaluate_model_dir(model_dir: str | Path, eval_frames: Sequence[int], checkpoint: str = "best", *,
                       batch_size: int = 32, num_workers: int = 0, device: str = "cpu",
                       max_videos: int = 0, progress: bool = True) -> Evaluation:
    """Top-1/top-5 of the model trained in `model_dir` at each T in `eval_frames` (cached).

    The table carries: model (vanilla, st, ffn, proportional, mixed, finetune, ffn_no_td, ...),
    train_frames ("16", "4/8/16"), variant, data, arch, eval_frames, top1, top5, n, seed, step (of the
    checkpoint), checkpoint_id, max_videos and model_name (the model folder's name); the naming columns
    come from the checkpoint's config. The model folder is locked while it is evaluated.
    """
    run = ModelRun(model_dir)
    device = str(resolve_device(device))
    path = run.checkpoint(checkpoint)
    state = load_checkpoint(path, mmap=True)  # its id keys the cache; the weights are read if evaluated
    key = checkpoint_id(state, path)
    config = TrainConfig.from_saved(state["config"], source=str(path))

    def compute(missing: list[int]) -> Evaluation:
        model, _ = trained_from_state(state, path, device=device)
        _, val = open_splits(config, progress)
        fresh = evaluate(model, val, missing, frame_size=config.frame_size, resize_size=config.resize_size,
                         batch_size=batch_size, num_workers=num_workers, device=torch.device(device),
                         max_videos=max_videos, name=config.model, train_frames=config.train_frames,
                         progress=progress)
        fresh.table = fresh.table.assign(step=state["step"], checkpoint_id=key, max_videos=max_videos)
        return fresh

    result = _cached(run, checkpoint, key, max_videos, eval_frames, compute)
    result.table = result.table.assign(**_names(config), step=state["step"], model_name=run.name)
    return result


def ensemble_members(run: WorkbookRun, checkpoint: str = "best", frames: Sequence[int] = ENSEMBLE_FRAMES) -> list[ModelRun]:
    """The ST models of `run` the paper's Ensemble averages: its vanilla-recipe models trained at a T of
    `frames` (vanilla_16f, st_4f, st_8f), with `checkpoint`; fewer than two: none."""
    members = []
    for t in frames:
        folder = run.model(TrainConfig(recipe="vanilla", num_frames=t).model_name)
        if folder.is_trained(checkpoint):
            members.append(folder)
    return members if len(members) >= 2 else []


def evaluate_ensemble(run_dir: str | Path, members: Sequence[ModelRun], eval_frames: Sequence[int],
                      checkpoint: str = "best", *, batch_size: int = 32, num_workers: int = 0, device: str = "cpu",
                      max_videos: int = 0, progress: bool = True) -> Evaluation:
    """The paper's Ensemble (`ffnlib.models.Ensemble`: the members' probabilities averaged, each fed the
    clip at its T) of the trained models `members` of workbook run `run_dir`, at each T in `eval_frames`,
    cached in `<run_dir>/ensembles/ensemble_<T>-<T>...` keyed by the members' checkpoint ids. The
    members must be trained on the same data with the same seed. The table's columns as
    `evaluate_model_dir`'s: model "ensemble", train_frames the members' T ("4/8/16"), model_name the
    ensemble's folder name, and `members` (their folders, ";"-separated)."""
    device = str(resolve_device(device))
    paths = [ModelRun(m).checkpoint(checkpoint) for m in members]
    states = [load_checkpoint(path, mmap=True) for path in paths]
    configs = [TrainConfig.from_saved(s["config"], source=str(p)) for s, p in zip(states, paths)]
    order = sorted(range(len(configs)), key=lambda i: configs[i].num_frames)
    paths, states, configs = [paths[i] for i in order], [states[i] for i in order], [configs[i] for i in order]
    data = {(c.data, c.dataset, c.data_root, c.val_split, c.seed, c.frame_size, c.resize_size) for c in configs}
    if len(data) > 1 or any(c.recipe != "vanilla" for c in configs):
        raise RunFolderError(f"an ensemble's members must be TSMs (recipe vanilla) trained on the same data with the "
                             f"same seed and sizes: {[str(p) for p in paths]} are not")
    frames = "/".join(str(c.num_frames) for c in configs)
    folder = WorkbookRun(run_dir).ensemble("ensemble_" + frames.replace("/", "-"))
    key = "+".join(checkpoint_id(s, p) for s, p in zip(states, paths))
    config = configs[-1]

    def compute(missing: list[int]) -> Evaluation:
        model = Ensemble([trained_from_state(s, p, device=device)[0] for s, p in zip(states, paths)])
        _, val = open_splits(config, progress)
        fresh = evaluate(model, val, missing, frame_size=config.frame_size, resize_size=config.resize_size,
                         batch_size=batch_size, num_workers=num_workers, device=torch.device(device),
                         max_videos=max_videos, name="ensemble", train_frames=frames, progress=progress)
        fresh.table = fresh.table.assign(checkpoint_id=key, max_videos=max_videos)
        return fresh

    result = _cached(folder, checkpoint, key, max_videos, eval_frames, compute)
    result.table = result.table.assign(**{**_names(config), "model": "ensemble", "train_frames": frames, "variant": ""},
                                       step=min(int(s["step"]) for s in states), model_name=folder.name,
                                       members=";".join(str(ModelRun(m).root) for m in members))
    return result


def collect(run_dirs: Iterable[str | Path], eval_frames: Sequence[int], checkpoint: str = "best", *,
            batch_size: int = 32, num_workers: int = 0, device: str = "cpu", max_videos: int = 0,
            progress: bool = True, ensemble_frames: Sequence[int] | None = ENSEMBLE_FRAMES) -> Evaluation:
    """Every trained model of every workbook run in `run_dirs`, at each T in `eval_frames` (cached:
    see `evaluate_model_dir`), and per run the Ensemble of its ST models at the T of `ensemble_frames`
    (at least two of them; the paper's are 4, 8 and 16, and with only 4F and 16F the ensemble is of
    those two, train_frames "4/16"; None: no ensemble).

    `table`: one row per model folder and T, with the columns of `evaluate_model_dir` plus `run_dir`
    (the workbook run) and `model_dir` (an ensemble's: its folder under ensembles/, with `members`);
    `train_frames` is always a string ("16", "4/8/16").
    `per_class`: eval_frames, label, class_name, top1, n, plus model, train_frames, variant, seed, model_name, run_dir.
    `device` may be "auto" (CUDA, then MPS, then the CPU).
    Several runs are several seeds of the same study; a model met twice with the same seed (the same
    run collected twice) is logged as a warning, since it would count twice in the mean. A model
    folder without checkpoint `checkpoint` (still training, or stopped before its first epoch ended)
    is left out with a warning naming it.
    """
    device = str(resolve_device(device))
    jobs: list[tuple[WorkbookRun, Path, list[ModelRun] | None]] = []  # (run, folder, ensemble members or None)
    for run_dir in map(WorkbookRun, run_dirs):
        if not run_dir.root.is_dir():
            raise RunFolderError(f"{run_dir.root}: no such run folder")
        found = run_dir.trained_models(checkpoint)
        unfinished = [d.name for d in sorted(run_dir.models.glob("*")) if d.is_dir() and ModelRun(d) not in found]
        if unfinished:
            log.warning("%s: left out %s: no checkpoints/%s.pt (still training, or stopped before its first "
                        "epoch ended)", run_dir.root, ", ".join(unfinished), checkpoint)
        if not found:
            raise RunFolderError(f"{run_dir.root}: no trained model (models/*/checkpoints/{checkpoint}.pt); "
                                 "train them with notebooks 04 and 07 into this run folder first")
        jobs += [(run_dir, model.root, None) for model in found]
        members = ensemble_members(run_dir, checkpoint, ensemble_frames) if ensemble_frames else []
        if members:
            jobs.append((run_dir, run_dir.root, members))
    options = dict(batch_size=batch_size, num_workers=num_workers, device=device, max_videos=max_videos,
                   progress=progress)
    tables, per_classes = [], []
    for run_dir, folder, members in tqdm(jobs, desc="models", disable=not progress):
        if members is None:
            result = evaluate_model_dir(folder, eval_frames, checkpoint, **options)
            model_dir = str(folder)
        else:
            result = evaluate_ensemble(folder, members, eval_frames, checkpoint, **options)
            model_dir = str(run_dir.ensemble(result.table["model_name"].iloc[0]).root)
        table = result.table.assign(train_frames=result.table["train_frames"].astype(str),
                                    run_dir=str(run_dir.root), model_dir=model_dir)
        first = table.iloc[0]
        per_class = result.per_class.assign(**{k: first[k] for k in ("model", "train_frames", "variant", "seed",
                                                                     "model_name", "run_dir")})
        tables.append(table)
        per_classes.append(per_class)
    table = pd.concat(tables, ignore_index=True)
    twice = table[table.duplicated(["model_dir", "eval_frames"], keep=False)
                  | table.duplicated(["data", "arch", "model", "train_frames", "variant", "eval_frames", "seed"],
                                     keep=False)]
    if len(twice):
        seen = twice.drop_duplicates(["model_dir"])
        log.warning("the same model and seed appears in several run folders (each counts in the mean): %s",
                    ", ".join(seen["model_dir"]))
    return Evaluation(sort_models(table), pd.concat(per_classes, ignore_index=True))


# ------------------------------------------------------------------------------------------ compute and classes
_GMACS_CACHE: dict[tuple, float] = {}


def clip_gmacs(model_dir: str | Path, eval_frames: Sequence[int], checkpoint: str = "best") -> dict[int, float]:
    """GMACs (10^9 multiply-accumulates, the paper's "GFLOPs") per clip of the model trained in
    `model_dir`, at each T: `ffnlib.models.flops` with its config's architecture, model keywords,
    frame size and number of classes. An FFN at T counts its inference branch (nearest to T)."""
    from ffnlib.models import flops

    run = ModelRun(model_dir)
    state = load_checkpoint(run.checkpoint(checkpoint), mmap=True)
    config = TrainConfig.from_saved(state["config"], source=str(run.checkpoint(checkpoint)))
    num_classes = int(state["num_classes"])
    kwargs = model_kwargs(config)
    out = {}
    for t in eval_frames:
        key = (config.network, config.frame_size, num_classes, repr(sorted(kwargs.items())), int(t))
        if key not in _GMACS_CACHE:
            _GMACS_CACHE[key] = flops(config.network, int(t), frame_size=config.frame_size,
                                      num_classes=num_classes, **kwargs) / 1e9
        out[int(t)] = _GMACS_CACHE[key]
    return out


def with_gmacs(table: pd.DataFrame, checkpoint: str = "best") -> pd.DataFrame:
    """`table` (from `collect`, which gives `model_dir`) with a `gmacs` column: GMACs per clip at
    eval_frames (an ensemble's: its members' sum)."""
    if "model_dir" not in table.columns:
        raise ValueError("with_gmacs needs the model_dir column of collect()'s table")
    members = table["members"] if "members" in table.columns else pd.Series("", index=table.index)
    gmacs = {}
    for (folder, among), rows in table.assign(members=members.fillna("")).groupby(["model_dir", "members"], sort=False):
        frames = sorted(rows["eval_frames"].unique())
        parts = [clip_gmacs(m, frames, checkpoint) for m in among.split(";")] if among else [
            clip_gmacs(folder, frames, checkpoint)]
        for t in frames:
            gmacs[(folder, int(t))] = sum(part[int(t)] for part in parts)
    return table.assign(gmacs=[gmacs[(d, int(t))] for d, t in zip(table["model_dir"], table["eval_frames"])])


def class_tfd(per_class: pd.DataFrame, model: str = "vanilla", high: int = 16, low: int = 4) -> pd.DataFrame:
    """Per class, how much top-1 model `model` loses from `high` to `low` frames (mean over seeds).

    `per_class` is `collect`'s. Returns label, class_name, top1_<high>, top1_<low>, drop (points,
    > 0: worse at `low`), n (videos), seeds; sorted by drop, largest first (the classes that collapse).
    Classes with no validation video (NaN top-1) are left out.
    """
    rows = per_class[per_class["model"] == model]
    if rows.empty:
        raise ValueError(f"no per-class results of model {model!r}; there are {sorted(per_class['model'].unique())}")
    have = set(rows["eval_frames"])
    if not {high, low} <= have:
        raise ValueError(f"model {model!r} was evaluated at T = {sorted(have)}; per-class TFD needs {low} and {high}")
    by_t = {}
    for t in (high, low):
        at_t = rows[rows["eval_frames"] == t].dropna(subset=["top1"])
        by_t[t] = at_t.groupby(["label", "class_name"]).agg(top1=("top1", "mean"), n=("n", "max"),
                                                             seeds=("top1", "size"))
    out = by_t[high][["top1"]].rename(columns={"top1": f"top1_{high}"}).join(
        by_t[low].rename(columns={"top1": f"top1_{low}"}), how="inner")
    out["drop"] = out[f"top1_{high}"] - out[f"top1_{low}"]
    out = out.reset_index()[["label", "class_name", f"top1_{high}", f"top1_{low}", "drop", "n", "seeds"]]
    return out.sort_values(["drop", "label"], ascending=[False, True], kind="stable").reset_index(drop=True)

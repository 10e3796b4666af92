"""Temporal Frequency Deviation: every trained model evaluated at every frame count.

A workbook run (`ffnlib.runs.WorkbookRun`) holds its trained models under `models/<model_name>/`
(vanilla_16f, st_4f, ffn, proportional, mixed; see `TrainConfig.model_name`). `evaluate_model_dir`
evaluates one of them at a list of T on its own validation split and caches the result beside its
checkpoints (`ModelRun.evaluation_cache`), keyed by the checkpoint's id, so that notebooks 05 and 08
and a second `make demo` never evaluate the same weights at the same T twice, and a checkpoint
replaced by other weights is evaluated afresh.

Notebook 08 builds the study's table from any set of workbook runs (one per seed):

    result = collect(run_dirs, eval_frames)      every model of every run, evaluated or read back
    long_table(result.table)                     model, train_frames, eval_frames, top1, top5, n, seed
    summarize(result.table)                      mean, std and number of seeds per (model, train_frames, T)
    table1_markdown(result.table)                the paper's Table-1 layout, its SSv2 rows beside ours
    with_gmacs(result.table), class_tfd(...)     compute per clip; per-class drop from 16F to 4F
"""
from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from ffnlib.display import MISSING  # "–": a cell a model does not have, as in every table of the workbook
from ffnlib.paths import write_text_atomic
from ffnlib.runs import ModelRun, RunFolderError, WorkbookRun
from ffnlib.train import (Evaluation, TrainConfig, evaluate, load_checkpoint, model_kwargs, open_splits,
                          resolve_device, trained_from_state)

log = logging.getLogger(__name__)


def checkpoint_id(state: dict, path: Path) -> str:
    """The id `save_checkpoint` wrote into the checkpoint, or (an older file) a hash of its bytes."""
    if state.get("checkpoint_id"):
        return str(state["checkpoint_id"])
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha1:{digest.hexdigest()}"


def evaluate_model_dir(model_dir: str | Path, eval_frames: Sequence[int], checkpoint: str = "best", *,
                       batch_size: int = 32, num_workers: int = 0, device: str = "cpu",
                       max_videos: int = 0, progress: bool = True) -> Evaluation:
    """Top-1/top-5 of the model trained in `model_dir` at each T in `eval_frames` (cached).

    The table carries: model (vanilla, st, ffn, proportional, mixed), train_frames ("16", "4/8/16"),
    eval_frames, top1, top5, n, seed, step (of the checkpoint), checkpoint_id, max_videos and
    model_name (the model folder's name). The model folder is locked while it is evaluated.
    """
    run = ModelRun(model_dir)
    device = str(resolve_device(device))
    path = run.checkpoint(checkpoint)
    state = load_checkpoint(path, mmap=True)  # its id keys the cache; the weights are read if evaluated
    key = checkpoint_id(state, path)
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
            model, config = trained_from_state(state, path, device=device)
            _, val = open_splits(config, progress)
            fresh = evaluate(model, val, missing, frame_size=config.frame_size, resize_size=config.resize_size,
                             batch_size=batch_size, num_workers=num_workers, device=torch.device(device),
                             max_videos=max_videos, name=config.model,
                             train_frames="/".join(map(str, config.train_frame_counts)), progress=progress)
            fresh.table = fresh.table.assign(seed=config.seed, step=state["step"], checkpoint_id=key,
                                             max_videos=max_videos, model_name=run.name)
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


def collect(run_dirs: Iterable[str | Path], eval_frames: Sequence[int], checkpoint: str = "best", *,
            batch_size: int = 32, num_workers: int = 0, device: str = "cpu", max_videos: int = 0,
            progress: bool = True) -> Evaluation:
    """Every trained model of every workbook run in `run_dirs`, at each T in `eval_frames` (cached:
    see `evaluate_model_dir`).

    `table`: one row per model folder and T, with the columns of `evaluate_model_dir` plus `run_dir`
    (the workbook run) and `model_dir`; `train_frames` is always a string ("16", "4/8/16").
    `per_class`: eval_frames, label, class_name, top1, n, plus model, train_frames, seed, model_name, run_dir.
    `device` may be "auto" (CUDA, then MPS, then the CPU).
    Several runs are several seeds of the same study; a model met twice with the same seed (the same
    run collected twice) is logged as a warning, since it would count twice in the mean. A model
    folder without checkpoint `checkpoint` (still training, or stopped before its first epoch ended)
    is left out with a warning naming it.
    """
    device = str(resolve_device(device))
    models: list[ModelRun] = []
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
        models += found
    tables, per_classes = [], []
    for model in tqdm(models, desc="models", disable=not progress):
        result = evaluate_model_dir(model.root, eval_frames, checkpoint, batch_size=batch_size,
                                    num_workers=num_workers, device=device, max_videos=max_videos,
                                    progress=progress)
        table = result.table.assign(train_frames=result.table["train_frames"].astype(str),
                                    run_dir=str(model.run_dir), model_dir=str(model.root))
        first = table.iloc[0]
        per_class = result.per_class.assign(model=first["model"], train_frames=first["train_frames"],
                                            seed=first["seed"], model_name=first["model_name"],
                                            run_dir=first["run_dir"])
        tables.append(table)
        per_classes.append(per_class)
    table = pd.concat(tables, ignore_index=True)
    twice = table[table.duplicated(["model", "train_frames", "eval_frames", "seed"], keep=False)]
    if len(twice):
        seen = twice.drop_duplicates(["model", "train_frames", "seed", "model_dir"])
        log.warning("the same model and seed appears in several run folders (each counts in the mean): %s",
                    ", ".join(seen["model_dir"]))
    return Evaluation(sort_models(table), pd.concat(per_classes, ignore_index=True))


# ------------------------------------------------------------------------------------------ the study's table
# The FFN paper's Table 1 as quoted in REFERENCE.md section 1: TSM-R50 on Something-Something V2,
# 1 clip x 1 centre crop 224, top-1 %. ST's 16F entry is the vanilla model itself.
PAPER_SSV2_TOP1: dict[str, dict[int, float]] = {
    "vanilla": {4: 31.52, 8: 51.55, 16: 61.02},
    "st": {4: 53.38, 8: 59.29, 16: 61.02},
    "ffn": {4: 56.07, 8: 61.86, 16: 63.61},
}
PAPER_SOURCE = "FFN paper, Table 1: TSM-R50 on SSv2"
PAPER_ROWS = {"vanilla": "TSM trained at 16F", "st": "ST (one TSM per T)", "ffn": "FFN (4/8/16F)"}
TABLE_FRAMES = (4, 8, 16)  # the columns of Table 1
LONG_COLUMNS = ["model", "train_frames", "eval_frames", "top1", "top5", "n", "seed"]  # tfd_table.csv
MODEL_ORDER = ("vanilla", "st", "proportional", "mixed", "ffn")
ROW_NAMES = {
    "vanilla": "TSM trained at {train_frames}F (vanilla)",
    "st": "ST (one TSM per T)",
    "proportional": "Proportional sampling ({train_frames}F)",
    "mixed": "Mixed sampling ({train_frames}F)",
    "ffn": "FFN ({train_frames}F)",
}


def _train_frames_key(value) -> tuple:
    return tuple(int(t) for t in str(value).split("/") if t.isdigit())


def sort_models(table: pd.DataFrame) -> pd.DataFrame:
    """`table` in the order of Table 1 (MODEL_ORDER, then other names), then train_frames, T, seed."""
    order = {name: i for i, name in enumerate(MODEL_ORDER)}
    keys = pd.DataFrame({
        "m": table["model"].map(lambda m: order.get(m, len(order))),
        "name": table["model"].astype(str),
        "tf": table["train_frames"].map(_train_frames_key),
    }, index=table.index)
    extra = [c for c in ("eval_frames", "seed") if c in table.columns]
    keys = pd.concat([keys, table[extra]], axis=1)
    return table.loc[keys.sort_values(["m", "name", "tf", *extra]).index].reset_index(drop=True)


def long_table(table: pd.DataFrame) -> pd.DataFrame:
    """The long TFD table of the CSV: exactly model, train_frames, eval_frames, top1, top5 (percent),
    n (videos) and seed, one row per model, seed and T, in Table-1 order."""
    missing = sorted(set(LONG_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"the TFD table lacks column(s) {missing}; it has {list(table.columns)}")
    out = table[LONG_COLUMNS].assign(train_frames=table["train_frames"].astype(str))
    return sort_models(out)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; NaN with one seed) over seeds, per (model, train_frames,
    eval_frames): top1_mean, top1_std, top5_mean, top5_std, seeds (how many rows went in), n (videos
    per evaluation; logged when the seeds did not evaluate the same number)."""
    table = table.assign(train_frames=table["train_frames"].astype(str))
    keys = ["model", "train_frames", "eval_frames"]
    grouped = table.groupby(keys, sort=False)
    uneven = grouped["n"].nunique()
    if (uneven > 1).any():
        log.warning("seeds evaluated on different numbers of videos for %s", list(uneven[uneven > 1].index))
    summary = grouped.agg(top1_mean=("top1", "mean"), top1_std=("top1", "std"), top5_mean=("top5", "mean"),
                          top5_std=("top5", "std"), seeds=("top1", "size"), n=("n", "max")).reset_index()
    return sort_models(summary)


def _row_name(model: str, train_frames: str) -> str:
    return ROW_NAMES.get(model, model + " ({train_frames}F)").format(train_frames=train_frames)


def table1(table: pd.DataFrame, frame_counts: Sequence[int] = TABLE_FRAMES,
           paper: Mapping[str, Mapping[int, float]] | None = PAPER_SSV2_TOP1) -> pd.DataFrame:
    """Table 1 as a long frame: row (its label), model, source ("measured" or "paper"), eval_frames,
    top1_mean, top1_std, seeds; one line per row and column T that has a value (missing ones absent).

    Rows: vanilla; ST, whose entry at T is the model trained at T (the ST model st_<T>f, or at the
    vanilla model's own T the vanilla model, as in the paper); then proportional, mixed and FFN (one
    row per training frame set); then the `paper` rows.
    """
    summary = summarize(table)
    summary = summary[summary["eval_frames"].isin(list(frame_counts))]
    rows = []

    def add(name, model, source, cells):
        for _, cell in cells.iterrows():
            rows.append({"row": name, "model": model, "source": source, "eval_frames": int(cell["eval_frames"]),
                         "top1_mean": cell["top1_mean"], "top1_std": cell["top1_std"], "seeds": int(cell["seeds"])})

    own_t = summary["train_frames"] == summary["eval_frames"].astype(str)
    listed = list(dict.fromkeys(summary["model"]))
    for model in [m for m in MODEL_ORDER if m in listed or m == "st"] + [m for m in listed if m not in MODEL_ORDER]:
        if model == "st":
            cells = summary[summary["model"].isin(["st", "vanilla"]) & own_t]
            if (cells["model"] == "st").any():
                add(_row_name("st", ""), "st", "measured", cells.sort_values("eval_frames"))
            continue
        of_model = summary[summary["model"] == model]
        for train_frames in dict.fromkeys(of_model["train_frames"]):
            add(_row_name(model, train_frames), model, "measured", of_model[of_model["train_frames"] == train_frames])
    for model, values in (paper or {}).items():
        name = f"paper, TSM-R50 on SSv2: {PAPER_ROWS.get(model, model)}"
        cells = pd.DataFrame([{"eval_frames": t, "top1_mean": v, "top1_std": float("nan"), "seeds": 1}
                              for t, v in values.items() if t in frame_counts])
        add(name, model, "paper", cells)
    return pd.DataFrame(rows, columns=["row", "model", "source", "eval_frames", "top1_mean", "top1_std", "seeds"])


def format_cell(mean: float, std: float, seeds: int, digits: int = 2) -> str:
    """"61.02"; with several seeds "61.02 ± 0.35 (3 seeds)"; a missing value "–"."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if seeds > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f} ({seeds} seeds)"
    return f"{mean:.{digits}f}"


def table1_markdown(table: pd.DataFrame, frame_counts: Sequence[int] = TABLE_FRAMES,
                    paper: Mapping[str, Mapping[int, float]] | None = PAPER_SSV2_TOP1, caption: str = "") -> str:
    """Table 1 in markdown: one row per model (see `table1`), one column per T, top-1 %, mean ± std
    over seeds with their number when above one, "–" where a model was not trained or evaluated;
    the paper's rows last, labelled as the paper's. `caption` goes above the table."""
    cells = table1(table, frame_counts, paper)
    names = list(dict.fromkeys(cells["row"]))
    header = "| model | " + " | ".join(f"{t}F" for t in frame_counts) + " |"
    lines = [header, "| --- | " + " | ".join("---:" for _ in frame_counts) + " |"]
    for name in names:
        of_row = cells[cells["row"] == name].set_index("eval_frames")
        texts = [format_cell(of_row.at[t, "top1_mean"], of_row.at[t, "top1_std"], int(of_row.at[t, "seeds"]))
                 if t in of_row.index else MISSING for t in frame_counts]
        lines.append(f"| {name} | " + " | ".join(texts) + " |")
    videos = sorted(set(int(n) for n in table["n"])) if len(table) else []
    notes = ["Top-1 (%), 1 clip × 1 centre crop" + (f", {'/'.join(map(str, videos))} validation videos" if videos else "")
             + "; mean ± std over seeds (sample std) with the number of seeds where more than one; "
             f"{MISSING}: no such model. ST at the vanilla model's T is the vanilla model itself (as in the paper)."]
    if paper:
        notes.append(f"Rows starting \"paper\" are the published numbers ({PAPER_SOURCE}), not results of this run.")
    return "\n".join(([caption, ""] if caption else []) + lines + [""] + notes) + "\n"


def write_tables(table: pd.DataFrame, run_dir: str | Path, frame_counts: Sequence[int] = TABLE_FRAMES,
                 caption: str = "") -> tuple[Path, Path]:
    """Write the workbook run's `tfd_table.csv` (`long_table`) and `tfd_table.md` (`table1_markdown`)."""
    run = WorkbookRun(run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = run.table_csv, run.table_md
    write_text_atomic(csv_path, long_table(table).to_csv(index=False))
    write_text_atomic(md_path, table1_markdown(table, frame_counts, caption=caption))
    return csv_path, md_path


# ------------------------------------------------------------------------------------------ compute and classes
_GMACS_CACHE: dict[tuple, float] = {}


def clip_gmacs(model_dir: str | Path, eval_frames: Sequence[int], checkpoint: str = "best") -> dict[int, float]:
    """GMACs (10^9 multiply-accumulates, the paper's "GFLOPs") per clip of the model trained in
    `model_dir`, at each T: `ffnlib.models.flops` with its config's architecture, model keywords,
    frame size and number of classes. An FFN at T counts its inference branch (nearest to T)."""
    from ffnlib.models import flops

    run = ModelRun(model_dir)
    config = TrainConfig.from_yaml(run.config)
    num_classes = int(load_checkpoint(run.checkpoint(checkpoint), mmap=True)["num_classes"])
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
    """`table` (from `collect`, which gives `model_dir`) with a `gmacs` column: GMACs per clip at eval_frames."""
    if "model_dir" not in table.columns:
        raise ValueError("with_gmacs needs the model_dir column of collect()'s table")
    gmacs = {}
    for folder, rows in table.groupby("model_dir", sort=False):
        for t, value in clip_gmacs(folder, sorted(rows["eval_frames"].unique()), checkpoint).items():
            gmacs[(folder, t)] = value
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

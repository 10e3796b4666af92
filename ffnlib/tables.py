"""The TFD tables: a long table of evaluations (from `ffnlib.tfd.collect`) summarised over seeds and
rendered, the study's own rows and every table of the paper with its numbers beside ours.

    long_table(table)                 the CSV: one row per model, seed and T (LONG_COLUMNS)
    summarize(table)                  mean, std and number of seeds per model (KEYS) and T
    study_table / study_markdown      every model of the runs, one row each (ST and the ensemble as the
                                      paper builds them), the paper's rows on the same data last
    paper_table / paper_markdown      one table of the paper (`ffnlib.paper.TABLES`): each of its rows
                                      measured (mean ± std over seeds) beside the paper's number
    write_tables(table, run_dir)      tfd_table.csv and tfd_table.md
    write_paper_tables(table, run_dir)  paper_tables.md: the paper's tables with a measured cell

A model is told apart from others by KEYS: the data it learnt from, its backbone, `model` (vanilla,
st, proportional, mixed, finetune, ensemble, ffn, ffn_no_sn, ...), `train_frames` ("4/16") and
`variant` (mixed's mixup probability, lam...); rows with equal keys in several run folders are seeds.
"""
from __future__ import annotations

import functools
import logging
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ffnlib import paper
from ffnlib.display import MISSING  # "–": a cell a model does not have, as in every table of the workbook
from ffnlib.paths import write_text_atomic
from ffnlib.runs import WorkbookRun
from ffnlib.train.config import TrainConfig

log = logging.getLogger(__name__)

KEYS = ["data", "arch", "model", "train_frames", "variant"]  # what makes two rows the same model
LONG_COLUMNS = ["model", "train_frames", "variant", "eval_frames", "top1", "top5", "n", "seed", "data", "arch",
                "model_name"]  # tfd_table.csv
MODEL_ORDER = ("vanilla", "st", "proportional", "mixed", "finetune", "ensemble", "ffn", "ffn_no_sn", "ffn_no_wa",
               "ffn_no_td", "ffn_no_ws")
TABLE_FRAMES = (4, 8, 16)  # the columns of the study table
ABLATIONS = {"_no_sn": "w/o Specialized Normalization", "_no_wa": "w/o Weight Alteration",
             "_no_td": "w/o Temporal Distillation", "_no_ws": "w/o Weight Sharing"}
PAPER_SYMBOLS = {"mixup_prob": "ρ", "mixup_alpha": "α", "lam": "λ"}


def with_keys(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with every column of KEYS (absent ones empty) and `train_frames` as a string ("16" read
    back from a CSV as the integer 16 stays "16")."""
    out = table.assign(**{k: "" for k in KEYS if k not in table.columns})
    return out.assign(train_frames=out["train_frames"].astype(str), variant=out["variant"].fillna("").astype(str))


def _train_frames_key(value) -> tuple:
    return tuple(int(t) for t in str(value).split("/") if t.isdigit())


def sort_models(table: pd.DataFrame) -> pd.DataFrame:
    """`table` in the order of the paper's tables (MODEL_ORDER, then other names), then train_frames,
    variant, T and seed."""
    order = {name: i for i, name in enumerate(MODEL_ORDER)}
    keys = pd.DataFrame({
        "m": table["model"].map(lambda m: order.get(m, len(order))),
        "name": table["model"].astype(str),
        "tf": table["train_frames"].map(_train_frames_key),
    }, index=table.index)
    extra = [c for c in ("data", "arch", "variant", "eval_frames", "seed") if c in table.columns]
    keys = pd.concat([keys, table[extra]], axis=1)
    return table.loc[keys.sort_values(["m", "name", "tf", *extra]).index].reset_index(drop=True)


def long_table(table: pd.DataFrame) -> pd.DataFrame:
    """The long TFD table of the CSV: exactly LONG_COLUMNS, one row per model, seed and T, in the
    paper's order (top1, top5 in percent, n videos)."""
    table = with_keys(table)
    missing = sorted(set(LONG_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"the TFD table lacks column(s) {missing}; it has {list(table.columns)}")
    return sort_models(table[LONG_COLUMNS])


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; NaN with one seed) over seeds, per model (KEYS) and
    eval_frames: top1_mean, top1_std, top5_mean, top5_std, seeds (how many rows went in), n (videos
    per evaluation; logged when the seeds did not evaluate the same number)."""
    table = with_keys(table)
    keys = [*KEYS, "eval_frames"]
    grouped = table.groupby(keys, sort=False)
    uneven = grouped["n"].nunique()
    if (uneven > 1).any():
        log.warning("seeds evaluated on different numbers of videos for %s", list(uneven[uneven > 1].index))
    summary = grouped.agg(top1_mean=("top1", "mean"), top1_std=("top1", "std"), top5_mean=("top5", "mean"),
                          top5_std=("top5", "std"), seeds=("top1", "size"), n=("n", "max")).reset_index()
    return sort_models(summary)


def format_cell(mean: float, std: float, seeds: int, digits: int = 2) -> str:
    """"61.02"; with several seeds "61.02 ± 0.35 (3 seeds)"; a missing value "–"."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if seeds > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f} ({seeds} seeds)"
    return f"{mean:.{digits}f}"


def _variant_text(variant: str) -> str:
    """"mixup_prob=0.75" -> "ρ = 0.75"; "frame_probs=0.25/0.75" -> "ϱ = 0.75" (the larger T's, of two)."""
    out = []
    for part in filter(None, str(variant).split(",")):
        key, _, value = part.partition("=")
        if key == "frame_probs":
            probs = value.split("/")
            out.append(f"ϱ = {probs[-1]}" if len(probs) == 2 else f"probabilities {value}")
        elif key == "init_from":
            out.append(f"from {value}")
        else:
            out.append(f"{PAPER_SYMBOLS.get(key, key)} = {value}")
    return ", ".join(out)


def row_label(model: str, train_frames: str, variant: str = "") -> str:
    """A model's row in the study table: "Mixed sampling (4/16F, ρ = 0.5)", "FFN w/o Weight Sharing (4/8/16F)"."""
    detail = ", ".join(filter(None, [f"{train_frames}F", _variant_text(variant)]))
    if model == "vanilla":
        return f"TSM trained at {train_frames}F (vanilla)"
    if model == "st":
        return "ST (one TSM per T)"
    if model == "finetune":
        return f"Fine-tuning to {train_frames}F" + (f" ({_variant_text(variant)})" if variant else "")
    removed = re.findall(r"_no_(?:sn|wa|td|ws)", model)
    if model.startswith("ffn_") and removed and "".join(removed) == model[len("ffn"):]:
        return f"FFN {', '.join(ABLATIONS[r] for r in removed)} ({detail})"
    names = {"proportional": "Proportional sampling", "mixed": "Mixed sampling", "ensemble": "Ensemble of the ST models",
             "ffn": "FFN"}
    return f"{names.get(model, model)} ({detail})"


# ------------------------------------------------------------------------------------------ the study table
def study_table(table: pd.DataFrame, frame_counts: Sequence[int] = TABLE_FRAMES,
                paper_rows: Mapping[str, Mapping[int, float]] | None = None) -> pd.DataFrame:
    """Every model of `table` (a `collect` table) as a long frame: row (its label), model, source
    ("measured" or "paper"), eval_frames, top1_mean, top1_std, seeds; one line per row and T of
    `frame_counts` that has a value.

    Rows: vanilla; ST, whose entry at T is the model trained at T (the ST model st_<T>f, or at the
    vanilla model's own T the vanilla model, as in the paper); then each other model (one row per
    train_frames and variant); then `paper_rows` ({"vanilla": {T: top1}, "st": ..., "ffn": ...}).
    With several data or backbones in `table`, each row says which.
    """
    summary = summarize(table)
    summary = summary[summary["eval_frames"].isin(list(frame_counts))]
    rows = []
    several = summary[["data", "arch"]].drop_duplicates().shape[0] > 1

    def add(name, model, source, cells):
        for _, cell in cells.iterrows():
            rows.append({"row": name, "model": model, "source": source, "eval_frames": int(cell["eval_frames"]),
                         "top1_mean": cell["top1_mean"], "top1_std": cell["top1_std"], "seeds": int(cell["seeds"])})

    for (data, arch), of_setting in summary.groupby(["data", "arch"], sort=False):
        where = f" [{data}, {arch}]" if several else ""
        own_t = of_setting["train_frames"] == of_setting["eval_frames"].astype(str)
        listed = list(dict.fromkeys(of_setting["model"]))
        for model in [m for m in MODEL_ORDER if m in listed or m == "st"] + [m for m in listed if m not in MODEL_ORDER]:
            if model == "st":
                cells = of_setting[of_setting["model"].isin(["st", "vanilla"]) & own_t & (of_setting["variant"] == "")]
                if (cells["model"] == "st").any():
                    add(row_label("st", "") + where, "st", "measured", cells.sort_values("eval_frames"))
                continue
            of_model = of_setting[of_setting["model"] == model]
            for (train_frames, variant), cells in of_model.groupby(["train_frames", "variant"], sort=False):
                add(row_label(model, train_frames, variant) + where, model, "measured", cells)
    for model, values in (paper_rows or {}).items():
        name = f"paper: {row_label(model, '16' if model == 'vanilla' else '4/8/16')}"
        cells = pd.DataFrame([{"eval_frames": t, "top1_mean": v, "top1_std": float("nan"), "seeds": 1}
                              for t, v in values.items() if t in frame_counts])
        add(name, model, "paper", cells)
    return pd.DataFrame(rows, columns=["row", "model", "source", "eval_frames", "top1_mean", "top1_std", "seeds"])


def _markdown(header: list[str], lines: list[list[str]], text_columns: int = 1) -> list[str]:
    """A markdown table: the first `text_columns` columns left-aligned, the numbers right-aligned."""
    align = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(line) + " |" for line in lines)]


def _videos(table: pd.DataFrame) -> str:
    videos = sorted(set(int(n) for n in table["n"])) if len(table) else []
    return f", {'/'.join(map(str, videos))} validation videos" if videos else ""


def study_markdown(table: pd.DataFrame, frame_counts: Sequence[int] = TABLE_FRAMES,
                   paper_rows: Mapping[str, Mapping[int, float]] | None = None, paper_source: str = "",
                   caption: str = "") -> str:
    """`study_table` in markdown: one row per model, one column per T, top-1 %, mean ± std over seeds
    with their number when above one, "–" where a model was not trained or evaluated; the paper's
    rows last, labelled as the paper's. `caption` goes above the table."""
    cells = study_table(table, frame_counts, paper_rows)
    lines = []
    for name in dict.fromkeys(cells["row"]):
        of_row = cells[cells["row"] == name].set_index("eval_frames")
        lines.append([name, *(format_cell(of_row.at[t, "top1_mean"], of_row.at[t, "top1_std"], int(of_row.at[t, "seeds"]))
                              if t in of_row.index else MISSING for t in frame_counts)])
    notes = ["Top-1 (%), 1 clip × 1 centre crop" + _videos(table)
             + "; mean ± std over seeds (sample std) with the number of seeds where more than one; "
             f"{MISSING}: no such model. ST at the vanilla model's T is the vanilla model itself (as in the paper)."]
    if paper_rows:
        notes.append(f"Rows starting \"paper\" are the published numbers ({paper_source}), not results of this run.")
    body = _markdown(["model", *(f"{t}F" for t in frame_counts)], lines)
    return "\n".join(([caption, ""] if caption else []) + body + [""] + notes) + "\n"


def write_tables(table: pd.DataFrame, run_dir: str | Path, frame_counts: Sequence[int] = TABLE_FRAMES,
                 caption: str = "", data: str | None = None) -> tuple[Path, Path]:
    """Write the workbook run's `tfd_table.csv` (`long_table`) and `tfd_table.md` (`study_markdown`,
    with the paper's rows on `data`, by default the data of the table when it has one)."""
    run = WorkbookRun(run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    settings = with_keys(table)["data"].unique() if len(table) else []
    data = data if data is not None else (settings[0] if len(settings) == 1 else "")
    rows, source = paper.paper_rows(data)
    write_text_atomic(run.table_csv, long_table(table).to_csv(index=False))
    write_text_atomic(run.table_md, study_markdown(table, frame_counts, rows, source, caption=caption))
    return run.table_csv, run.table_md


# ------------------------------------------------------------------------------------------ the paper's tables
@functools.lru_cache(maxsize=None)
def _key(name: str) -> tuple[str, str, str]:
    """(model, train_frames, variant) of the MODELS entry `name` on the default config."""
    config = TrainConfig().replace(**paper.MODELS[name])
    return config.model, config.train_frames, config.variant


def _seed_values(table: pd.DataFrame, model: str, t: int, st_frames: Sequence[int]) -> pd.Series:
    """Top-1 at T = `t` of the row model `model` (a MODELS name, ST or ENSEMBLE) by seed."""
    at_t = table[table["eval_frames"] == t]
    if model == paper.ST:
        chosen = at_t["model"].isin(["st", "vanilla"]) & (at_t["train_frames"] == str(t)) & (at_t["variant"] == "")
    elif model == paper.ENSEMBLE:
        chosen = (at_t["model"] == "ensemble") & (at_t["train_frames"] == "/".join(map(str, sorted(st_frames))))
    else:
        name, train_frames, variant = _key(model)
        chosen = (at_t["model"] == name) & (at_t["train_frames"] == train_frames) & (at_t["variant"] == variant)
    return at_t[chosen].groupby("seed")["top1"].mean()


def paper_table(table: pd.DataFrame, name: str, data: str | None = None, arch: str | None = None) -> pd.DataFrame:
    """Table `name` of `ffnlib.paper.TABLES` measured on `table` (a `collect` table): one line per row
    and column T: row, models (the model folders it needs), eval_frames, top1_mean, top1_std, seeds
    (0: not measured) and paper (the paper's value, NaN where it gives none).

    The rows are matched on the models' KEYS, on data `data` and backbone `arch` (None: any) unless a
    row names its own (Table 9's datasets, Table 5's depths). An ST row's cell at T is the model
    trained at T; a `minus` row's cell is the difference of its two models, seed by seed.
    """
    spec = paper.TABLES[name]
    table = with_keys(table)
    lines = []
    for row in spec.rows:
        setting = table
        for key, value in (("data", row.data or data), ("arch", row.arch or arch)):
            if value is not None:
                setting = setting[setting[key] == value]
        for t in spec.frames:
            values = _seed_values(setting, row.model, t, tuple(row.paper))
            if row.minus is not None:
                values = (values - _seed_values(setting, row.minus, t, tuple(row.paper))).dropna()
            lines.append({"row": row.label, "models": ", ".join(row.models), "eval_frames": t,
                          "top1_mean": values.mean() if len(values) else float("nan"),
                          "top1_std": values.std() if len(values) > 1 else float("nan"), "seeds": len(values),
                          "paper": row.paper.get(t, float("nan"))})
    return pd.DataFrame(lines, columns=["row", "models", "eval_frames", "top1_mean", "top1_std", "seeds", "paper"])


def paper_markdown(table: pd.DataFrame, name: str, data: str | None = None, arch: str | None = None) -> str:
    """`paper_table` in markdown: per row the model folders it is measured on, then per T our top-1
    (mean ± std over seeds, "–" where not measured), then the paper's, then the paper's parameters and
    GFLOPs where it gives them."""
    spec = paper.TABLES[name]
    cells = paper_table(table, name, data, arch)
    lines = []
    for row in spec.rows:
        of_row = cells[cells["row"] == row.label].set_index("eval_frames")
        ours = [format_cell(of_row.at[t, "top1_mean"], of_row.at[t, "top1_std"], int(of_row.at[t, "seeds"]))
                for t in spec.frames]
        theirs = [f"{row.paper[t]:.2f}" if t in row.paper else MISSING for t in spec.frames]
        lines.append([row.label, ", ".join(f"`{m}`" for m in row.models), *ours, *theirs, row.other or MISSING])
    header = ["row", "model folders", *(f"{t}F" for t in spec.frames), *(f"paper {t}F" for t in spec.frames),
              "paper: params, GFLOPs"]
    measured = f"{data or 'any data'}, {arch or 'any backbone'}"
    where = "SSv1" if spec.data == "ssv1" else "the dataset each row names"
    title = (f"**{spec.title}** (paper: TSM-ResNet50 on {where} unless a row says otherwise; measured: "
             f"{measured})")
    notes = ["Top-1 (%), 1 clip × 1 centre crop" + _videos(table[table["eval_frames"].isin(spec.frames)])
             + f"; mean ± std over seeds where more than one; {MISSING}: not measured (train the model folders "
             "named in the row) or not reported by the paper."]
    return "\n".join([title, "", *_markdown(header, lines, text_columns=2), "", *notes]) + "\n"


def measured_tables(table: pd.DataFrame, data: str | None = None, arch: str | None = None,
                    names: Sequence[str] = paper.PAPER_TABLES) -> tuple[list[str], list[str]]:
    """The paper's tables of `names` (`ffnlib.paper.TABLES`) split into those with at least one
    measured cell and the others, each in the order of `names`."""
    measured = {name for name in names if (paper_table(table, name, data, arch)["seeds"] > 0).any()}
    return [n for n in names if n in measured], [n for n in names if n not in measured]


def write_paper_tables(table: pd.DataFrame, run_dir: str | Path, data: str | None = None,
                       arch: str | None = None, caption: str = "",
                       names: Sequence[str] = paper.PAPER_TABLES) -> Path:
    """Write `paper_tables.md` into the workbook run: each table of `names` with a measured cell
    (`paper_markdown`), then the list of the others with the model folders they need."""
    run = WorkbookRun(run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    shown, others = measured_tables(table, data, arch, names)
    parts = [caption] if caption else []
    parts += [paper_markdown(table, name, data, arch) for name in shown]
    needs = [f"- {paper.TABLES[name].title}: needs {', '.join(paper.TABLES[name].models)}" for name in others]
    if needs:
        parts.append("Not measured in these runs:\n\n" + "\n".join(needs) + "\n")
    write_text_atomic(run.paper_tables, "\n".join(parts))
    return run.paper_tables

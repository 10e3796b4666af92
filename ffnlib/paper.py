"""The FFN paper's experiments: the models they train and the numbers they report.

    MODELS      model folder name -> the TrainConfig changes that train it on top of a profile
                (vanilla_16f, st_4f, mixed_rho0.75, ffn_no_td, ffn_4-8-12-16 ...); notebooks 04 and 07
                and the sweep files in slurm/sweeps/ train them, `model_config` builds one
    TABLES      each table of the paper (1, 2, 3, its middle sequence, 4, 5, 9 and Fig. 8's any-frame
                curves): its columns (frame counts) and rows, each row naming the models it is measured
                on and the paper's top-1 at each T
    SSV2_ROWS   the paper's headline SSv2 rows (REFERENCE.md section 1), beside the study table

Numbers are top-1 %, 1 clip x 1 centre crop, TSM-ResNet50 unless a row says otherwise, on
Something-Something V1 (SSv1) unless a table says otherwise, as REFERENCE.md section 7 quotes them.
`ffnlib.tables` renders a table with the measured numbers beside these.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ffnlib.paths import write_text_atomic
from ffnlib.train.config import TrainConfig

# ------------------------------------------------------------------------------------------ the models
_PAIR = [4, 16]  # Table 1's baselines sample 4F and 16F
MODELS: dict[str, dict] = {
    # TSM at one T (notebook 04): vanilla at 16F, separated training (ST) at every other T
    "vanilla_16f": {"recipe": "vanilla", "num_frames": 16},
    **{f"st_{t}f": {"recipe": "vanilla", "num_frames": t} for t in (2, 4, 6, 8, 10, 12, 14, 18, 20, 24)},
    "finetune_4f": {"recipe": "finetune", "num_frames": 4, "init_from": "vanilla_16f"},
    # one TSM on several T (notebook 07): the paper's sampling baselines (Table 1)
    "proportional": {"recipe": "proportional", "frame_counts": _PAIR},
    "proportional_p0.25-0.75": {"recipe": "proportional", "frame_counts": _PAIR, "frame_probs": [0.25, 0.75]},
    "mixed": {"recipe": "mixed", "frame_counts": _PAIR, "mixup_prob": 0.5},
    "mixed_rho0.75": {"recipe": "mixed", "frame_counts": _PAIR, "mixup_prob": 0.75},
    # FFN (notebook 07), its ablations (Table 4) and other sequences (Tables 2 and 3): the FFN keys not
    # named take the profile's values
    "ffn": {"recipe": "ffn"},
    "ffn_no_sn": {"recipe": "ffn", "private_bn": False},
    "ffn_no_wa": {"recipe": "ffn", "adaconv": False},
    "ffn_no_td": {"recipe": "ffn", "distill": False},
    "ffn_no_ws": {"recipe": "ffn", "weight_sharing": False},
    **{f"ffn_{'-'.join(map(str, counts))}": {"recipe": "ffn", "frame_counts": list(counts)}
       for counts in ((4, 16), (4, 8, 12, 16), (4, 8, 16, 24), (4, 10, 16), (4, 12, 16))},
}
TRAINED_BY_NOTEBOOK_04 = ("vanilla", "finetune")  # the recipes notebook 04 trains; 07 trains the others


def model_config(base: TrainConfig, name: str) -> TrainConfig:
    """The TrainConfig of model `name` of MODELS on top of `base` (a profile with its overrides): the
    model's changes win, every other key is the base's. Its folder is `model_name` (the name itself
    unless the base changes a key the name speaks of, e.g. FFN's frame counts)."""
    if name not in MODELS:
        raise KeyError(f"no model {name!r} in ffnlib.paper.MODELS; there are {sorted(MODELS)}")
    return base.replace(**MODELS[name])


# ------------------------------------------------------------------------------------------ the tables
ST = "st"  # a row whose cell at T is the ST model trained at T (at 16F the vanilla model)
ENSEMBLE = "ensemble"  # a row whose cells are the ST models of the run averaged (ffnlib.tfd, not trained)


@dataclass(frozen=True)
class Row:
    """One row of a paper table: `label` as the paper names it, `model` the MODELS entry it is measured
    on (or ST, ENSEMBLE), `paper` the paper's top-1 at each T it reports, `data` / `arch` where the row
    is on other data or another backbone than the table (Tables 9 and 5), `minus` a row whose cells
    are this model's minus that row's model's (Fig. 8's FFN - ST), `other` the paper's parameters and
    GFLOPs where it gives them."""

    label: str
    model: str
    paper: Mapping[int, float]
    data: str | None = None
    arch: str | None = None
    minus: str | None = None
    other: str = ""

    @property
    def models(self) -> tuple[str, ...]:
        """The model folders the row needs (an ST row and the ensemble: every ST model it shows)."""
        names = [m for m in (self.model, self.minus) if m and m not in (ST, ENSEMBLE)]
        if ST in (self.model, self.minus) or self.model == ENSEMBLE:
            names += ["vanilla_16f" if t == 16 else f"st_{t}f" for t in sorted(self.paper)]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Table:
    """A table of the paper: `frames` (its columns, T), `rows`; `data` the data its rows are on."""

    name: str
    title: str
    frames: tuple[int, ...]
    rows: tuple[Row, ...]
    data: str = "ssv1"
    models: tuple[str, ...] = field(default=())

    def __post_init__(self):
        needed = [m for row in self.rows for m in row.models]
        object.__setattr__(self, "models", tuple(dict.fromkeys(needed)))


_VANILLA_R50 = {4: 20.60, 6: 30.23, 8: 37.36, 10: 42.72, 12: 45.97, 14: 47.49, 16: 48.55}
_ST_R50 = {4: 39.71, 6: 43.73, 8: 45.63, 10: 47.31, 12: 47.71, 14: 48.01, 16: 48.55}
_FFN_R50 = {4: 42.85, 6: 46.57, 8: 48.20, 10: 48.81, 12: 48.90, 14: 50.47, 16: 50.79}


def _at(values: Mapping[int, float], frames) -> dict[int, float]:
    return {t: values[t] for t in frames if t in values}


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("table1", "Table 1: the baselines against FFN", (4, 8, 16), (
        Row("TSM trained at 16F", "vanilla_16f", _at(_VANILLA_R50, (4, 8, 16)),
            other="25.6M params; 16.4 / 32.7 / 65.4 GFLOPs"),
        Row("Mixed Sampling, ρ = 0.50", "mixed", {4: 27.89, 8: 41.07, 16: 48.44}),
        Row("Mixed Sampling, ρ = 0.75", "mixed_rho0.75", {4: 30.43, 8: 42.56, 16: 47.81}),
        Row("Proportional Sampling, ϱ = 0.50", "proportional", {4: 37.56, 8: 44.82, 16: 45.37}),
        Row("Proportional Sampling, ϱ = 0.75", "proportional_p0.25-0.75", {4: 32.06, 8: 43.15, 16: 47.14}),
        Row("Fine-tuning 16F → 4F", "finetune_4f", {4: 39.95, 8: 40.37, 16: 28.96}),
        Row("Ensemble of the ST models", ENSEMBLE, {4: 35.88, 8: 46.25, 16: 46.82}, other="25.6M x 3 params"),
        Row("Separated Training (ST)", ST, _at(_ST_R50, (4, 8, 16)), other="25.6M x 3 params"),
        Row("FFN", "ffn", _at(_FFN_R50, (4, 8, 16)), other="25.7M params; 16.4 / 32.8 / 65.5 GFLOPs"),
    )),
    Table("table2", "Table 2: how many sequences FFN trains on", (4, 8, 12, 16), (
        Row("FFN(2): 4/16", "ffn_4-16", {4: 41.69, 8: 37.93, 12: 48.10, 16: 49.79}),
        Row("FFN(3): 4/8/16", "ffn", {4: 42.85, 8: 48.20, 12: 48.90, 16: 50.79}),
        Row("FFN(4): 4/8/12/16", "ffn_4-8-12-16", {4: 43.40, 8: 48.66, 12: 49.77, 16: 50.63}),
        Row("ST", ST, {4: 39.71, 8: 45.63, 12: 47.71, 16: 48.55}),
    )),
    Table("table3", "Table 3: a sequence beyond 16F", (4, 8, 16, 24), (
        Row("ST, 24F included", ST, {4: 39.71, 8: 45.63, 16: 48.55, 24: 47.90}),
        Row("FFN on 4/8/16/24", "ffn_4-8-16-24", {4: 41.28, 8: 46.72, 16: 49.79, 24: 49.95}),
    )),
    Table("middle", "The middle sequence: FFN on 4 / v_M / 16", (4, 6, 8, 10, 12, 14, 16), (
        Row("FFN, v_M = 10", "ffn_4-10-16", dict(zip((4, 6, 8, 10, 12, 14, 16),
                                                    (43.10, 44.77, 47.81, 49.26, 49.63, 50.67, 51.12)))),
        Row("FFN, v_M = 12", "ffn_4-12-16", dict(zip((4, 6, 8, 10, 12, 14, 16),
                                                    (42.92, 43.57, 46.82, 48.85, 49.73, 50.40, 50.79)))),
    )),
    Table("table4", "Table 4: FFN's design choices, one removed at a time", (4, 8, 16), (
        Row("w/o Specialized Normalization", "ffn_no_sn", {4: 35.79, 8: 46.80, 16: 44.62}),
        Row("w/o Weight Alteration", "ffn_no_wa", {4: 41.91, 8: 47.92, 16: 49.84}),
        Row("w/o Temporal Distillation", "ffn_no_td", {4: 39.61, 8: 45.65, 16: 48.07}),
        Row("w/o Weight Sharing", "ffn_no_ws", {4: 41.51, 8: 47.16, 16: 48.23}, other="25.6M x 3 params"),
        Row("FFN", "ffn", _at(_FFN_R50, (4, 8, 16))),
    )),
    Table("table5", "Table 5: other depths (ResNet-18 and ResNet-101)", (4, 8, 16), (
        Row("R18: TSM", "vanilla_16f", {4: 16.82, 8: 33.12, 16: 42.95}, arch="resnet18"),
        Row("R18: ST", ST, {4: 32.33, 8: 38.21, 16: 42.95}, arch="resnet18"),
        Row("R18: FFN", "ffn", {4: 36.83, 8: 41.61, 16: 43.57}, arch="resnet18"),
        Row("R101: TSM", "vanilla_16f", {4: 22.15, 8: 39.30, 16: 49.57}, arch="resnet101"),
        Row("R101: ST", ST, {4: 40.76, 8: 46.96, 16: 49.57}, arch="resnet101"),
        Row("R101: FFN", "ffn", {4: 45.15, 8: 50.24, 16: 51.79}, arch="resnet101"),
    )),
    Table("table9", "Table 9: other datasets", (4, 8, 16), (
        Row("SSv2: TSM", "vanilla_16f", {4: 31.52, 8: 51.55, 16: 61.02}, data="ssv2"),
        Row("SSv2: ST", ST, {4: 53.38, 8: 59.29, 16: 61.02}, data="ssv2"),
        Row("SSv2: FFN", "ffn", {4: 56.07, 8: 61.86, 16: 63.61}, data="ssv2"),
        Row("Kinetics-400: TSM", "vanilla_16f", {4: 64.10, 8: 69.77, 16: 73.16}, data="kinetics"),
        Row("Kinetics-400: ST", ST, {4: 66.25, 8: 70.38, 16: 73.16}, data="kinetics"),
        Row("Kinetics-400: FFN", "ffn", {4: 68.96, 8: 72.33, 16: 74.35}, data="kinetics"),
        Row("HMDB51: TSM", "vanilla_16f", {4: 42.16, 8: 46.38, 16: 48.30}, data="hmdb51"),
        Row("HMDB51: ST", ST, {4: 44.74, 8: 46.77, 16: 48.30}, data="hmdb51"),
        Row("HMDB51: FFN", "ffn", {4: 45.67, 8: 47.67, 16: 48.80}, data="hmdb51"),
    ), data="various"),
    Table("anyframe", "Fig. 8: any-frame inference (FFN on 4/8/16 at T it was not trained on)",
          (2, 4, 6, 8, 10, 12, 14, 16, 18, 20), (
              Row("TSM trained at 16F", "vanilla_16f", _VANILLA_R50),
              Row("ST (a model per T)", ST, _ST_R50),
              Row("FFN", "ffn", _FFN_R50),
              Row("FFN - ST (points)", "ffn", {2: 0.12, 18: 2.35, 20: 2.73}, minus=ST),
          )),
)}
# The TSM rows of the paper's tables (1-5 and 9) whose cells `ffnlib.tables.paper_table` fills.
PAPER_TABLES = ("table1", "table2", "table3", "middle", "table4", "table5", "table9", "anyframe")


def _headline_rows(table: "Table", data: str) -> dict[str, dict[int, float]]:
    """`table`'s vanilla / ST / FFN rows on `data`, by the study table's model names."""
    wanted = {"vanilla_16f": "vanilla", ST: "st", "ffn": "ffn"}
    return {wanted[r.model]: dict(r.paper) for r in table.rows
            if r.model in wanted and r.minus is None and (r.data or table.data) == data}


# The paper's headline rows on SSv2 (Table 9, REFERENCE.md section 1): the study table (notebook 08)
# shows them beside a run on SSv2 or on the built-in data (which imitates SSv2's task).
SSV2_ROWS = _headline_rows(TABLES["table9"], "ssv2")
SSV2_SOURCE = "FFN paper, Table 9 (REFERENCE.md section 1): TSM-R50 on SSv2"


def paper_rows(data: str) -> tuple[dict[str, dict[int, float]], str]:
    """The paper's vanilla / ST / FFN rows on `data` (the study table's reference rows) and their source:
    SSv2's for ssv2 and the built-in data, Table 1's for ssv1, Table 9's for kinetics and hmdb51; none
    for other data."""
    if data in ("ssv2", "builtin"):
        return SSV2_ROWS, SSV2_SOURCE
    table = TABLES["table1"] if data == "ssv1" else TABLES["table9"]
    rows = _headline_rows(table, data)
    source = f"FFN paper, {table.title.split(':')[0]}: TSM-R50 on {data}"
    return rows, (source if rows else "")


# ------------------------------------------------------------------------------------------ the sweeps
@dataclass(frozen=True)
class Sweep:
    """A sweep file of slurm/sweeps/ that trains every model a paper table needs, one line (one GPU)
    per model: `runs` is ((profile, run folder, model names), ...)."""

    file: str
    what: str
    runs: tuple[tuple[str, str, tuple[str, ...]], ...]
    after: str = ""  # what must have finished first

    @property
    def lines(self) -> list[str]:
        return [sweep_line(profile, run_dir, name) for profile, run_dir, names in self.runs for name in names]

    def text(self) -> str:
        """The sweep file: a header that says what it trains and the sbatch line, then one line per model."""
        head = textwrap.wrap(f"{self.what}, one GPU per model:", 100, initial_indent="# ", subsequent_indent="# ")
        head.append(f"#   sbatch --array=0-{len(self.lines) - 1} slurm/sweep.sbatch slurm/sweeps/{self.file}")
        if self.after:
            head += textwrap.wrap(self.after, 100, initial_indent="# ", subsequent_indent="# ")
        head += ["# Generated from ffnlib.paper.SWEEPS (python -m ffnlib.paper sweeps); a model folder that has",
                 "# finished is not trained again."]
        return "\n".join(head + self.lines) + "\n"


def sweep_line(profile: str, run_dir: str, name: str) -> str:
    """`train configs/<profile>.yaml <run_dir> --set key=value ...`: model `name` of MODELS, its keys as
    YAML flow values without spaces (a sweep line is split on white space)."""
    def flow(value) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(flow(v) for v in value) + "]"
        return str(value)

    sets = " ".join(f"--set {key}={flow(value)}" for key, value in MODELS[name].items())
    return f"train configs/{profile}.yaml {run_dir} {sets}"


_ST_TABLE1 = ("vanilla_16f", "st_4f", "st_8f")
SWEEPS: dict[str, Sweep] = {s.file: s for s in (
    Sweep("ssv1_r50_table1.txt", "The paper's Table 1 on SSv1 (TSM-R50): TSM, ST, Mixed and Proportional Sampling, "
          "FFN (the Ensemble is built from the ST models; fine-tuning: ssv1_r50_table1_finetune.txt)",
          (("ssv1_r50", "runs/ssv1_r50", (*_ST_TABLE1, "mixed", "mixed_rho0.75", "proportional",
                                          "proportional_p0.25-0.75", "ffn")),)),
    Sweep("ssv1_r50_table1_finetune.txt", "The paper's Table 1 on SSv1: fine-tuning the 16F TSM at 4F",
          (("ssv1_r50", "runs/ssv1_r50", ("finetune_4f",)),),
          after="After vanilla_16f has finished (line 0 of ssv1_r50_table1.txt): --dependency=afterok:<that job>"),
    Sweep("ssv1_r50_table2.txt", "The paper's Table 2 on SSv1: FFN on 2, 3 and 4 sequences, ST at 4, 8, 12 and 16F",
          (("ssv1_r50", "runs/ssv1_r50", (*_ST_TABLE1, "st_12f", "ffn_4-16", "ffn", "ffn_4-8-12-16")),)),
    Sweep("ssv1_r50_table3.txt", "The paper's Table 3 on SSv1: FFN on 4/8/16/24 and ST up to 24F, and the middle "
          "sequence (FFN on 4/10/16 and 4/12/16)",
          (("ssv1_r50", "runs/ssv1_r50", (*_ST_TABLE1, "st_24f", "ffn_4-8-16-24", "ffn_4-10-16", "ffn_4-12-16")),)),
    Sweep("ssv1_r50_table4.txt", "The paper's Table 4 on SSv1: FFN without each of its parts, and FFN",
          (("ssv1_r50", "runs/ssv1_r50", ("ffn_no_sn", "ffn_no_wa", "ffn_no_td", "ffn_no_ws", "ffn")),)),
    Sweep("ssv1_table5.txt", "The paper's Table 5 on SSv1: TSM, ST and FFN on ResNet-18 and ResNet-101",
          tuple((f"ssv1_r{d}", f"runs/ssv1_r{d}", ("vanilla_16f", "st_4f", "st_8f", "ffn")) for d in (18, 101))),
    Sweep("ssv1_r50_anyframe.txt", "The paper's Fig. 8 on SSv1: FFN at any T against ST trained at each T from 2 "
          "to 20F, and vanilla TSM",
          (("ssv1_r50", "runs/ssv1_r50", ("vanilla_16f", *(f"st_{t}f" for t in (2, 4, 6, 8, 10, 12, 14, 18, 20)),
                                          "ffn")),)),
    Sweep("table9.txt", "The paper's Table 9: TSM, ST and FFN on SSv2, Kinetics-400 and HMDB51",
          tuple((p, f"runs/{p}", ("vanilla_16f", "st_4f", "st_8f", "ffn")) for p in ("ssv2_r50", "k400_r50", "hmdb51_r50"))),
)}


def write_sweeps(folder: str | Path) -> list[Path]:
    """Write every sweep file of SWEEPS into `folder` (slurm/sweeps); returns their paths."""
    paths = []
    for sweep in SWEEPS.values():
        path = Path(folder) / sweep.file
        write_text_atomic(path, sweep.text())
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------ the GPU budget
# Videos per split (train, validation), as each layout's documentation states them; 50 epochs each.
SPLIT_SIZES = {"ssv1": (86_017, 11_522), "ssv2": (168_913, 24_777), "kinetics": (240_000, 19_800),
               "hmdb51": (3_570, 1_530)}
_MACS: dict[tuple, float] = {}  # flops() of one network at one T, counted once


def training_tflop(config: TrainConfig, num_classes: int = 174) -> float:
    """Estimated compute to train `config` (TFLOP): per training clip 3 x the forward (forward and
    backward) at the T the step runs (ffn: one clip per frame count; proportional: the mean over its
    probabilities; mixed: the larger T), per validation video the forward at each of `eval_frames`,
    2 FLOPs per multiply-accumulate (`ffnlib.models.flops`), `epochs` passes over SPLIT_SIZES."""
    from ffnlib.models import flops
    from ffnlib.train.setup import model_kwargs

    kwargs = model_kwargs(config)

    def macs(t) -> float:
        key = (config.network, config.frame_size, num_classes, repr(sorted(kwargs.items())), t)
        if key not in _MACS:
            _MACS[key] = flops(config.network, t, frame_size=config.frame_size, num_classes=num_classes, **kwargs)
        return _MACS[key]

    if config.recipe == "ffn":
        step = macs(tuple(config.frame_counts))
    elif config.recipe == "proportional":
        step = sum(p * macs(int(t)) for p, t in zip(config.probabilities, config.frame_counts))
    elif config.recipe == "mixed":
        step = macs(max(config.frame_counts))
    else:
        step = macs(config.num_frames)
    train, val = SPLIT_SIZES[config.dataset]
    per_epoch = 3 * step * train + sum(macs(int(t)) for t in config.eval_frames) * val
    return 2 * per_epoch * config.epochs / 1e12


def budget(tflops: float = 100.0) -> list[dict]:
    """The estimated GPU-hours of every sweep of SWEEPS at `tflops` TFLOP/s sustained per GPU: one row
    per sweep with its models, their TFLOP and GPU-hours (evaluation in notebooks 08/09 not included)."""
    rows = []
    for sweep in SWEEPS.values():
        total = 0.0
        for profile, _, names in sweep.runs:
            base = TrainConfig.from_yaml(Path(__file__).resolve().parent.parent / "configs" / f"{profile}.yaml")
            total += sum(training_tflop(model_config(base, name)) for name in names)
        rows.append({"sweep": sweep.file, "models": len(sweep.lines), "tflop": total,
                     "gpu_hours": total / tflops / 3600})
    return rows


def main(argv: list[str] | None = None) -> None:
    """python -m ffnlib.paper sweeps | budget [TFLOPS]"""
    import argparse

    from ffnlib.paths import PROJECT_ROOT

    parser = argparse.ArgumentParser(prog="python -m ffnlib.paper", description="The paper's sweep files and their cost.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sweeps", help="(re)write slurm/sweeps/ from ffnlib.paper.SWEEPS")
    budget_parser = commands.add_parser("budget", help="estimated GPU-hours of each sweep")
    budget_parser.add_argument("tflops", nargs="?", type=float, default=100.0,
                               help="sustained training TFLOP/s of one GPU (default 100)")
    args = parser.parse_args(argv)
    if args.command == "sweeps":
        for written in write_sweeps(PROJECT_ROOT / "slurm" / "sweeps"):
            print(written)
        return
    print(f"| sweep | models | PFLOP | GPU-hours at {args.tflops:g} TFLOP/s |\n| --- | ---: | ---: | ---: |")
    for row in budget(args.tflops):
        print(f"| {row['sweep']} | {row['models']} | {row['tflop'] / 1e3:,.0f} | {row['gpu_hours']:.1f} |")


if __name__ == "__main__":
    main()

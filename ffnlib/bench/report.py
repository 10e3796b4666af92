"""How the training benchmark's figures are shown and kept: its columns (title, key, format and meaning,
each stated once here: `RESULTS_HEADER` renders the meanings into benchmarks/RESULTS.md), the printed and
markdown tables, the goal lines, and the sections appended to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

GIB = 2**30


@dataclass(frozen=True)
class Column:
    title: str
    key: str  # the JSON line's key
    fmt: str  # "yn", "ms", "num", "%", "maxb", or a str.format pattern
    meaning: str


COLUMNS = (
    Column("model", "model", "{}", "`tsm_<arch>` (vanilla, one 16-frame clip, cross-entropy) or `ffn_<arch>` "
                                   "(4+8+16 frames, temporal distillation)"),
    Column("batch", "batch_size", "{}", "clips a step; frames/step = batch x 16 (vanilla) or batch x 28 (FFN)"),
    Column("px", "frame_size", "{}", "side of the square frames"),
    Column("prec", "precision", "{}", "autocast dtype (fp32 = off; fp16 adds a GradScaler)"),
    Column("CL", "channels_last", "yn", "channels_last model"),
    Column("compile", "compile", "yn", "`torch.compile`d step module, as `fit` compiles it"),
    Column("step ms", "step_s", "ms", "model-only: median time of `train_step` + `fit`'s per-step logging on "
                                      "synthetic uint8 clips already on the device (normalised in the step, as "
                                      "`fit` does)"),
    Column("no-sync ms", "step_s_nosync", "ms", "the same step without any `.item()` (no NaN check, no logging): "
                                                "the cost of the per-step host-device synchronisation"),
    Column("host ms", "step_cpu_s", "ms", "median CPU time of this process a model-only step: on a shared CPU "
                                          "steadier than the wall clock; on CUDA the host's work (launches, "
                                          "Python, spinning in synchronisations)"),
    Column("clips/s", "clips_per_s", "num", "model-only throughput: batch / step"),
    Column("frames/s", "frames_per_s", "num", "model-only throughput: frames/step / step"),
    Column("TFLOP/s", "achieved_tflops", "num", "training FLOPs a step / step; training FLOPs = 3 x forward FLOPs, "
                                                "forward FLOPs = 2 x the MACs of `ffnlib.models.flops`"),
    Column("MFU", "mfu", "%", "TFLOP/s / the device's measured peak (bf16 dense matmul on CUDA, fp32 matmul on "
                              "a CPU), given in the section"),
    Column("loader clips/s", "loader_clips_per_s", "num", "the DataLoader alone (real training view over the "
                                                          "SSv2-like WebM clips, `workers` processes)"),
    Column("e2e clips/s", "e2e_clips_per_s", "num", "`train_step` + logging fed by that loader"),
    Column("e2e/model", "e2e_vs_model", "%", "e2e clips/s / model-only clips/s (goal on one H100: at least 90% "
                                             "with 16 workers)"),
    Column("wait", "data_wait_fraction", "%", "fraction of the end-to-end time spent waiting for the next batch"),
    Column("mem GiB", "peak_mem_gib", "{:.1f}", "peak allocated GPU memory during the timed model-only steps "
                                                "(CUDA only)"),
    Column("max batch", "max_batch", "maxb", "largest batch whose training step fits (`--find-max-batch`, CUDA "
                                             "only), with its peak memory"),
    Column("FFN/van", "ffn_vs_vanilla", "{:.2f}", "FFN step / vanilla step of the same setting in the same run "
                                                  "(goal at most 1.8; floor 28/16 = 1.75)"),
    Column("FFN/van host", "ffn_vs_vanilla_cpu", "{:.2f}", "the same ratio by host CPU time (on a CPU with 1 "
                                                           "thread: each step's own compute, whatever the "
                                                           "neighbours do)"),
)

RESULTS_HEADER = """\
# Training throughput: `python -m ffnlib.bench train`

Each section below was appended by one run of the benchmark (`ffnlib/bench/train.py`): the device, the
date, torch, the exact command, then one row per configuration. The JSON lines of the same runs are
in `benchmarks/results.jsonl`.

Columns:

| column | meaning |
| --- | --- |
""" + "".join(f"| {c.title} | {c.meaning} |\n" for c in COLUMNS) + """
Reproduce a section with its command (run from the repository root). CPU figures come from a shared
2-core machine: approximate, and only a check that every path runs; the goals are for one H100.
"""


def setting_label(precision: str, channels_last: bool, compile: bool) -> str:
    """How a setting is named in the output: "bf16 channels_last compile"."""
    return f"{precision}{' channels_last' if channels_last else ''}{' compile' if compile else ''}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / GIB:.0f} GiB)"
    model = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


# ------------------------------------------------------------------------------------------ tables
def _cell(row: dict, column: Column) -> str:
    value, fmt = row.get(column.key), column.fmt
    if column.key == "step_s" and "error" in row:
        return row["error"]
    if value is None:
        return "-"
    if fmt == "yn":
        return "yes" if value else "no"
    if fmt == "ms":
        return f"{1e3 * value:.1f}"
    if fmt == "num":  # three significant figures or more: 1234, 123, 12.3, 1.23, 0.123
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.3g}"
    if fmt == "%":
        return f"{100 * value:.1f}%"
    if fmt == "maxb":
        peak = row.get("max_batch_peak_mem_gib")
        return f"{value} ({peak:.1f} GiB)" if peak else str(value)
    return fmt.format(value)


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    return [c.title for c in COLUMNS], [[_cell(r, c) for c in COLUMNS] for r in rows]


def text_table(rows: list[dict]) -> str:
    header, cells = table_rows(rows)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    header, cells = table_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in cells]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ goals
@dataclass(frozen=True)
class Goals:
    """The issue's goals, for FFN-R50 at batch 32 with AMP on one H100."""

    frames_per_s: float = 5000
    mfu: float = 0.15
    e2e_ratio: float = 0.90
    ffn_ratio: float = 1.8


def goal_lines(rows: list[dict], device: torch.device, goals: Goals = Goals()) -> list[str]:
    """The goals, judged on the best FFN row (assessed on CUDA only: they are set for one H100)."""
    ffn = [r for r in rows if r["recipe"] == "ffn" and "step_s" in r]
    if not ffn:
        return []
    best = max(ffn, key=lambda r: r["frames_per_s"])
    where = (f"best FFN row: {best['model']}, batch {best['batch_size']}, "
             f"{setting_label(best['precision'], best['channels_last'], best['compile'])}")

    def verdict(ok: bool | None) -> str:
        if ok is None:
            return "not measured"
        if device.type != "cuda":
            return "not assessed (CPU; the goals are for one H100)"
        return "MET" if ok else "NOT MET"

    e2e = best.get("e2e_vs_model")
    ratio = best.get("ffn_vs_vanilla")
    mfu = best.get("mfu")
    return [
        f"Goals ({where}):",
        f"- at least {goals.frames_per_s:,.0f} frames/s: {best['frames_per_s']:,.0f}: "
        f"{verdict(best['frames_per_s'] >= goals.frames_per_s)}",
        f"- about {goals.mfu:.0%} MFU: " + (f"{mfu:.1%}: {verdict(mfu >= goals.mfu)}" if mfu is not None
                                            else verdict(None)),
        f"- end-to-end at least {goals.e2e_ratio:.0%} of model-only" + (f" ({best.get('workers')} workers)" if e2e else "")
        + ": " + (f"{e2e:.1%}: {verdict(e2e >= goals.e2e_ratio)}" if e2e is not None else verdict(None)),
        f"- FFN step at most {goals.ffn_ratio}x the vanilla step: "
        + (f"{ratio:.2f}x: {verdict(ratio <= goals.ffn_ratio)}" if ratio is not None else verdict(None)),
    ]


# ------------------------------------------------------------------------------------------ RESULTS.md
def append_results(path: Path, header: dict, rows: list[dict], goals: list[str]) -> None:
    """Append one section (heading, command, context, table, goals) to the markdown file, creating it with
    the explanatory header when it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or not path.read_text().strip():
        path.write_text(RESULTS_HEADER)
    kind = "GPU" if header["device_type"] == "cuda" else "CPU"
    lines = [f"\n## {kind}: {header['device']}, {header['date']}\n"]
    if header.get("note"):
        lines.append(f"{header['note']}\n")
    lines.append(f"```\n{header['command']}\n```\n")
    if header.get("resolved_command") and header["resolved_command"] != header["command"]:
        lines.append(f"The same with every option spelled out:\n\n```\n{header['resolved_command']}\n```\n")
    context = (f"torch {header['torch']}" + (f", CUDA {header['cuda']}" if header.get("cuda") else "")
               + f", torch threads: {header['threads']}, peak {header['peak_tflops']:.2f} TFLOP/s ({header['peak_source']})")
    lines.append(context + ".")
    if header.get("defaults"):
        lines.append(f"Defaults chosen for {header['device_type']}: {header['defaults']}.")
    if header.get("clips"):
        lines.append(f"End-to-end data: {header['clips']}.")
    lines.append("")
    lines.append(markdown_table(rows))
    if goals:
        lines.append("")
        lines.extend(goals)
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")

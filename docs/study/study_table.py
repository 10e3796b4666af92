"""Tables 1 and 4 of the paper, from the study harness's results.jsonl: mean ± std over seeds.

    .venv/bin/python docs/study/study_table.py TAG [--results docs/study/results.jsonl] [--T 4,8,16]
        [--any 2,4,6,8,10,12,14,16,18,20]

Prints markdown: the rows of the paper's Table 1 (baselines) and Table 4 (ablations) for every recipe
of TAG found, top-1 % at each T as mean ± sample std over the seeds (and n), the paper's SSv1 numbers
beside them, then the per-seed numbers, and the any-frame rows where they were evaluated.
"""
import argparse
import json
import statistics
from collections import defaultdict

# recipe (as study_run.py names it, with rho/varrho where it has one) -> (row text, paper SSv1 4/8/16F)
ROWS = [
    ("vanilla16", "TSM trained at 16F (vanilla)", (20.60, 37.36, 48.55)),
    ("mixsamp@0.5", "Mixed Sampling rho=0.5", (27.89, 41.07, 48.44)),
    ("mixsamp@0.75", "Mixed Sampling rho=0.75", (30.43, 42.56, 47.81)),
    ("prop@0.5", "Proportional Sampling varrho=0.5", (37.56, 44.82, 45.37)),
    ("prop@0.75", "Proportional Sampling varrho=0.75", (32.06, 43.15, 47.14)),
    ("finetune", "Fine-tuning 16F -> 4F", (39.95, 40.37, 28.96)),
    ("ensemble", "Ensemble (ST 4/8/16F)", (35.88, 46.25, 46.82)),
    ("st", "ST (a TSM per T)", (39.71, 45.63, 48.55)),
    ("ffn", "FFN", (42.85, 48.20, 50.79)),
    ("ffn_nobn", "w/o Specialized Norm", (35.79, 46.80, 44.62)),
    ("ffn_noada", "w/o Weight Alteration", (41.91, 47.92, 49.84)),
    ("ffn_notd", "w/o Temporal Distillation", (39.61, 45.65, 48.07)),
    ("ffn_nows", "w/o Weight Sharing", (41.51, 47.16, 48.23)),
]


def key_of(rec):
    r = rec["recipe"]
    if r == "mixsamp":
        return f"mixsamp@{rec.get('rho', 0.5)}"
    if r == "prop":
        return f"prop@{rec.get('varrho', 0.5)}"
    return r


def fmt(values):
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tag")
    p.add_argument("--results", default="docs/study/results.jsonl")
    p.add_argument("--T", default="4,8,16")
    p.add_argument("--any", default="2,4,6,8,10,12,14,16,18,20")
    a = p.parse_args()
    Ts = [int(t) for t in a.T.split(",")]
    any_T = [int(t) for t in a.any.split(",")]
    acc = defaultdict(lambda: defaultdict(dict))  # key -> T -> seed -> top1
    for line in open(a.results):
        rec = json.loads(line)
        if rec.get("tag") != a.tag or "killed_at_step" in rec:
            continue
        k = key_of(rec)
        for f, v in rec.items():
            if f.startswith("acc") and f[3:].isdigit():
                acc[k][int(f[3:])][rec["seed"]] = v  # a later line of the same seed replaces an earlier one
    # ST: st4 at 4F, st8 at 8F, vanilla16 at 16F (the paper's ST row: one model per T)
    for T, src in ((4, "st4"), (8, "st8"), (16, "vanilla16")):
        if T in acc[src]:
            acc["st"][T] = acc[src][T]
    print(f"| model | {' | '.join(f'{T}F' for T in Ts)} | seeds | paper SSv1 {'/'.join(str(T) for T in Ts)}F |")
    print("| --- |" + " ---: |" * len(Ts) + " ---: | --- |")
    for k, text, paper in ROWS:
        if k not in acc:
            continue
        cells = [fmt([acc[k][T][s] for s in sorted(acc[k][T])]) if T in acc[k] else "–" for T in Ts]
        n = max((len(acc[k][T]) for T in Ts if T in acc[k]), default=0)
        print(f"| {text} | {' | '.join(cells)} | {n} | {' / '.join(f'{x:.2f}' for x in paper)} |")
    print("\nPer seed (4F / 8F / 16F):\n")
    for k, text, _ in ROWS:
        if k not in acc or k == "st":
            continue
        seeds = sorted({s for T in Ts for s in acc[k].get(T, {})})
        cells = ["/".join(f"{acc[k][T][s]:.1f}" if s in acc[k].get(T, {}) else "–" for T in Ts) for s in seeds]
        print(f"- {text}: " + ", ".join(f"seed {s}: {c}" for s, c in zip(seeds, cells)))
    rows = [k for k in ("vanilla16", "st", "ffn", "ensemble") if k in acc and any(T in acc[k] for T in any_T if T not in Ts)]
    if not rows:
        return
    print("\nAny-frame (mean over seeds):\n")
    print(f"| model | {' | '.join(f'{T}F' for T in any_T)} |")
    print("| --- |" + " ---: |" * len(any_T))
    for k in rows:
        cells = [f"{statistics.mean(acc[k][T].values()):.1f}" if T in acc[k] else "–" for T in any_T]
        print(f"| {k} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

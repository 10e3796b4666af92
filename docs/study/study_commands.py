"""The command of every exploratory run of results.jsonl, rebuilt from what its line records.

    .venv/bin/python docs/study/study_commands.py [TAG ...] [--results docs/study/results.jsonl]

One line per run: the study_run.py command that trains that recipe with the line's design, network,
training settings, steps, seed and threads (a run that trained several recipes in one command shows
as one command per recipe). Lines without "harness": 2 ran an earlier version of study_run.py, whose
knobs left out took the defaults of that day; their lines still record the full design they ran.
"""
import argparse
import json
import shlex

# results.jsonl key -> study_run.py option, for the options a line records when they were used
OPTIONS = {"steps": "--steps", "seed": "--seed", "data_seed": "--data_seed", "threads": "--threads",
           "scales": "--scales", "lam": "--lam", "rho": "--rho", "varrho": "--varrho"}


def command(rec: dict) -> str:
    words = ["docs/study/study_run.py", "--tag", rec["tag"], "--recipes", rec["recipe"]]
    for key in ("design", "model", "cfg"):
        if rec.get(key):
            words += [f"--{key}", json.dumps(rec[key], separators=(",", ":"))]
    for key, option in OPTIONS.items():
        if rec.get(key) not in (None, ""):
            words += [option, str(rec[key])]
    return " ".join(shlex.quote(w) for w in words)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("tags", nargs="*", help="only these tags (default: every line)")
    p.add_argument("--results", default="docs/study/results.jsonl")
    args = p.parse_args()
    with open(args.results) as f:
        records = [json.loads(line) for line in f if line.strip()]
    for rec in records:
        if args.tags and rec["tag"] not in args.tags:
            continue
        version = "" if rec.get("harness") == 2 else "  # earlier harness"
        print(f".venv/bin/python {command(rec)}{version}")


if __name__ == "__main__":
    main()

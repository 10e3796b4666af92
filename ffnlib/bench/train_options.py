"""The options of the training benchmark (`python -m ffnlib.bench train --help`): what to train, how,
timing, end-to-end data, memory and output; the device's defaults for the options left unset, the
settings swept (precision x channels_last x compile), and the command that reruns a measurement.
"""
from __future__ import annotations

import argparse
import itertools
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ffnlib.bench.report import setting_label
from ffnlib.models import ARCHITECTURES
from ffnlib.paths import PROJECT_ROOT
from ffnlib.train import World, resolve_device

RECIPES = ("vanilla", "ffn")
PRECISIONS = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}  # --precision -> TrainConfig.amp
DEFAULTS = {  # device type -> defaults of the options left unset
    "cuda": dict(arch="resnet50", batch_size=32, frame_size=224, precision="bf16", workers=16, steps=30,
                 warmup=10, clips=3000, clip_workers=min(16, os.cpu_count() or 1), threads=0),
    # One torch thread on a CPU: on a shared machine an OpenMP barrier waits (spinning) for a thread that
    # another process has descheduled, which made 2-thread steps 10-50x slower at random.
    "cpu": dict(arch="small", batch_size=8, frame_size=32, precision="fp32", workers=2, steps=5, warmup=2,
                clips=32, clip_workers=min(2, os.cpu_count() or 1), threads=1),
}
DEFAULT_OUT = PROJECT_ROOT / "benchmarks" / "RESULTS.md"
DEFAULT_JSONL = PROJECT_ROOT / "benchmarks" / "results.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to train")
    what.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None,
                      help="backbone: tsm_<arch> and ffn_<arch> (default: resnet50 on CUDA, small on a CPU)")
    what.add_argument("--recipes", default="vanilla,ffn",
                      help="comma list of vanilla (one 16-frame clip) and ffn (4+8+16); default both")
    what.add_argument("--model", default=None,
                      help="comma list of model names instead of --arch/--recipes, e.g. tsm_resnet50,ffn_resnet50")
    what.add_argument("--num-frames", type=int, default=16, help="T of the vanilla recipe (default 16)")
    what.add_argument("--frame-counts", default="4,8,16", help="T of the FFN recipe (default 4,8,16)")
    what.add_argument("--num-classes", type=int, default=174)
    what.add_argument("--batch-size", type=int, default=None, help="clips a step (default: 32 on CUDA, 8 on a CPU)")
    what.add_argument("--frame-size", type=int, default=None, help="crop side (default: 224 on CUDA, 32 on a CPU)")

    how = parser.add_argument_group("how (comma lists are swept: every combination is measured)")
    how.add_argument("--precision", default=None,
                     help="comma list of fp32, bf16, fp16 (autocast; fp16 with a GradScaler); "
                          "default: bf16 on CUDA, fp32 on a CPU")
    how.add_argument("--channels-last", nargs="?", const="on", default="off", choices=["on", "off", "both"],
                     help="channels_last model (the flag alone: on; 'both' measures both)")
    how.add_argument("--compile", nargs="?", const="on", default="off", choices=["on", "off", "both"],
                     help="torch.compile the model as fit does (the flag alone: on; 'both' measures both)")
    how.add_argument("--compile-mode", default="default", choices=["default", "reduce-overhead", "max-autotune"])
    how.add_argument("--optimizer", default="foreach", choices=["foreach", "fused"],
                     help="SGD implementation: foreach (make_optimizer, what fit uses) or fused")
    how.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    how.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (0: torch's default; default: 1 on a CPU, torch's on CUDA)")
    how.add_argument("--seed", type=int, default=0)

    timing = parser.add_argument_group("timing")
    timing.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 on CUDA, 5 on a CPU)")
    timing.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (compilation, cudnn autotuning; default: 10 on CUDA, 2 on a CPU)")
    timing.add_argument("--e2e-steps", type=int, default=None,
                        help="timed end-to-end steps (default: the larger of --steps and 3 x workers x "
                             "prefetch factor, so that the batches prefetched at the start cannot hide a slow loader)")
    timing.add_argument("--peak", default="measure",
                        help="peak TFLOP/s for MFU: 'measure' (large bf16 matmuls on CUDA, fp32 on a CPU) or a number")
    timing.add_argument("--no-sync-variant", dest="sync_variant", action="store_false",
                        help="skip the step without host-device synchronisation")

    data = parser.add_argument_group("end-to-end data")
    data.add_argument("--no-e2e", dest="e2e", action="store_false", help="model-only figures only (no clips)")
    data.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 16 on CUDA, 2 on a CPU)")
    data.add_argument("--prefetch-factor", type=int, default=2, help="batches each worker prefetches (default 2)")
    data.add_argument("--clips", type=int, default=None,
                      help="SSv2-like clips to write and read (default: 3000 on CUDA, 32 on a CPU)")
    data.add_argument("--clip-dir", type=Path, default=None,
                      help="folder for the clips, kept and reused across runs (default: a temporary folder)")
    data.add_argument("--clip-workers", type=int, default=None, help="processes writing the clips")
    data.add_argument("--clip-frames", type=int, default=48, help="frames per written clip (default 48)")
    data.add_argument("--clip-width", type=int, default=427)
    data.add_argument("--clip-height", type=int, default=240)

    memory = parser.add_argument_group("memory (CUDA)")
    memory.add_argument("--find-max-batch", action="store_true",
                        help="search the largest batch that fits: double until out of memory, then bisect")
    memory.add_argument("--max-batch-limit", type=int, default=4096, help="stop the search here (default 4096)")
    memory.add_argument("--max-batch-resolution", type=int, default=8,
                        help="bisect until the bracket is this narrow (default 8)")

    out = parser.add_argument_group("output")
    out.add_argument("--out", default=None,
                     help=f"markdown file the table is appended to (default {DEFAULT_OUT.relative_to(PROJECT_ROOT)}; "
                          f"'' for none)")
    out.add_argument("--jsonl", default=None,
                     help=f"JSON lines file (default {DEFAULT_JSONL.relative_to(PROJECT_ROOT)}; '' for none)")
    out.add_argument("--note", default="", help="free text written under the section's heading")


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in str(text).split(",") if item.strip()]


def _switch(value: str) -> list[bool]:
    return {"on": [True], "off": [False], "both": [False, True]}[value]


@dataclass(frozen=True)
class Setting:
    """How a model is trained; every recipe is measured under each setting."""

    precision: str
    channels_last: bool
    compile: bool

    @property
    def label(self) -> str:
        return setting_label(self.precision, self.channels_last, self.compile)


def resolve(args: argparse.Namespace) -> tuple[torch.device, list[str]]:
    """Fill the unset options with the device's defaults (in place); return the device and what was chosen."""
    device = resolve_device(args.device, World())
    defaults = DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    chosen = []
    for key, value in defaults.items():
        if getattr(args, key) is None and not (key == "arch" and args.model):
            setattr(args, key, value)
            chosen.append(f"{key.replace('_', '-')} {value}")
    if args.e2e_steps is None:
        args.e2e_steps = max(args.steps, 3 * args.workers * args.prefetch_factor)
        chosen.append(f"e2e-steps {args.e2e_steps}")
    if args.model:
        models = []
        for name in comma_list(args.model):
            family, _, arch = name.partition("_")
            if family not in ("tsm", "ffn") or arch not in ARCHITECTURES:
                raise SystemExit(f"--model {name!r}: expected tsm_<arch> or ffn_<arch> with arch in "
                                 f"{sorted(ARCHITECTURES)}")
            models.append(("vanilla" if family == "tsm" else "ffn", arch))
        args.models = models
    else:
        recipes = comma_list(args.recipes)
        unknown = sorted(set(recipes) - set(RECIPES))
        if unknown or not recipes:
            raise SystemExit(f"--recipes {args.recipes!r}: expected a comma list of {RECIPES}")
        args.models = [(recipe, args.arch) for recipe in recipes]
    precisions = comma_list(args.precision)
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown or not precisions:
        raise SystemExit(f"--precision {args.precision!r}: expected a comma list of {sorted(PRECISIONS)}")
    args.settings = [Setting(p, cl, comp) for p, cl, comp in
                     itertools.product(precisions, _switch(args.channels_last), _switch(args.compile))]
    for key in ("batch_size", "frame_size", "steps", "clips", "num_classes", "max_batch_resolution"):
        if getattr(args, key) < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    if args.warmup < 1:
        raise SystemExit("--warmup must be at least 1 (the first step builds the optimiser state)")
    return device, chosen


def resolved_command(args: argparse.Namespace) -> str:
    """The command with every option spelled out: reruns the same measurement whatever the defaults."""
    parts = ["python", "-m", "ffnlib.bench", "train"]
    if args.model:
        parts += ["--model", args.model]
    else:
        parts += ["--arch", args.arch, "--recipes", args.recipes]
    parts += ["--num-frames", args.num_frames, "--frame-counts", args.frame_counts, "--num-classes", args.num_classes,
              "--batch-size", args.batch_size, "--frame-size", args.frame_size, "--precision", args.precision,
              "--channels-last", args.channels_last, "--compile", args.compile, "--compile-mode", args.compile_mode,
              "--optimizer", args.optimizer, "--device", args.device, "--steps", args.steps, "--warmup", args.warmup,
              "--peak", args.peak]
    parts += ["--threads", args.threads]
    if not args.sync_variant:
        parts.append("--no-sync-variant")
    if args.e2e:
        parts += ["--workers", args.workers, "--prefetch-factor", args.prefetch_factor, "--e2e-steps", args.e2e_steps,
                  "--clips", args.clips, "--clip-frames", args.clip_frames, "--clip-width", args.clip_width,
                  "--clip-height", args.clip_height]
        if args.clip_dir:
            parts += ["--clip-dir", args.clip_dir]
    else:
        parts.append("--no-e2e")
    if args.find_max_batch:
        parts += ["--find-max-batch", "--max-batch-limit", args.max_batch_limit,
                  "--max-batch-resolution", args.max_batch_resolution]
    return shlex.join(str(p) for p in parts)


def typed_command() -> str | None:
    """The command as typed, when this process is `python -m ffnlib.bench train ...`."""
    if len(sys.argv) > 1 and sys.argv[0].endswith(os.path.join("ffnlib", "bench", "__main__.py")) \
            and sys.argv[1] == "train":
        return shlex.join(["python", "-m", "ffnlib.bench", *sys.argv[1:]])
    return None

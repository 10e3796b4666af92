"""Training throughput of vanilla TSM (one 16-frame clip) and FFN (4+8+16 frames): model-only, end to end,
frames/s, MFU, peak memory. Built from the training loop's own pieces (`build_model`, `make_optimizer`,
`train_step`, `autocast_dtype`, `train_view`, `epoch_batches`), so it measures what `fit` does.

For each setting (precision x channels_last x compile, each may be a list) and each recipe:

  model-only  `train_step` on synthetic clips already on the device, followed by the per-step logging
              of `fit` (`.item()` on the loss, its parts and the accuracy): median step time, clips/s,
              frames/s (frames the network sees a step / step time).
  no-sync     the same step without the NaN check's `.item()` and without the logging: no host-device
              synchronisation inside the step. `sync cost` = 1 - no-sync time / model-only time.
  MFU         training FLOPs a step (3 x forward, forward = 2 x the MACs of `ffnlib.models.flops`)
              / model-only step time / peak. The peak is measured (`--peak measure`: the best TFLOP/s of
              large bf16 matmuls on CUDA, fp32 on a CPU) or given (`--peak 989`).
  loader      the data pipeline alone: clips/s of the real DataLoader (the recipe's training view over
              SSv2-like WebM clips written first, `--workers` processes, pinned memory on CUDA)
              consumed by an empty loop; the first `workers` batches (the start-up burst) are not counted.
  end-to-end  `train_step` + logging fed by that loader: clips/s and the fraction of the step spent
              waiting for the next batch (the host clock is read after a device synchronisation).
  memory      peak allocated GPU memory over the timed model-only steps (CUDA); `--find-max-batch`
              searches the largest batch whose two training steps fit (double until out of memory,
              then bisect to `--max-batch-resolution`).
  ratio       FFN step / vanilla step of the same setting, measured in this run (floor 28/16 = 1.75).

Prints a table, appends one JSON line per configuration to `--jsonl` and a markdown table (device,
date, torch, the command) to `--out`. Defaults depend on the device: the issue's H100 set-up on CUDA
(ResNet-50, batch 32, 224 px, bf16, 16 workers, 3000 clips), a run of about a minute on a CPU (the
small network at 32 px, batch 8, 32 clips); the output says which were chosen.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ffnlib.bench import clips
from ffnlib.bench.clips import write_ssv2_like
from ffnlib.datasets import SSv2
from ffnlib.models import ARCHITECTURES, flops
from ffnlib.paths import PROJECT_ROOT
from ffnlib.train import (TrainConfig, Trainee, World, add_step, epoch_batches, make_loader, resolve_device,
                          train_step, train_view)

log = logging.getLogger(__name__)

RECIPES = ("vanilla", "ffn")
PRECISIONS = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}  # --precision -> TrainConfig.amp
GIB = 2**30
# The goals, for FFN-R50 at batch 32 with AMP on one H100.
GOAL_FRAMES_PER_S = 5000
GOAL_MFU = 0.15
GOAL_E2E_RATIO = 0.90
GOAL_FFN_RATIO = 1.8
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

RESULTS_HEADER = """\
# Training throughput: `python -m ffnlib.bench train`

Each section below was appended by one run of the benchmark (`ffnlib/bench/train.py`): the device, the
date, torch, the exact command, then one row per configuration. The JSON lines of the same runs are
in `benchmarks/results.jsonl`.

Columns:

| column | meaning |
| --- | --- |
| model | `tsm_<arch>` (vanilla, one 16-frame clip, cross-entropy) or `ffn_<arch>` (4+8+16 frames, temporal distillation) |
| batch | clips a step; frames/step = batch x 16 (vanilla) or batch x 28 (FFN) |
| prec, CL, compile | autocast dtype (fp32 = off; fp16 adds a GradScaler), channels_last model, `torch.compile` |
| step ms | model-only: median time of `train_step` + `fit`'s per-step logging on synthetic clips already on the device |
| no-sync ms | the same step without any `.item()` (no NaN check, no logging): the cost of the per-step host-device synchronisation |
| host ms | median CPU time of this process a model-only step: on a shared CPU steadier than the wall clock; on CUDA the host's work (launches, Python, spinning in synchronisations) |
| clips/s, frames/s | model-only throughput: batch / step, frames/step / step |
| TFLOP/s | training FLOPs a step / step; training FLOPs = 3 x forward FLOPs, forward FLOPs = 2 x the MACs of `ffnlib.models.flops` |
| MFU | TFLOP/s / the device's measured peak (bf16 dense matmul on CUDA, fp32 matmul on a CPU), given in the section |
| loader clips/s | the DataLoader alone (real training view over the SSv2-like WebM clips, `workers` processes) |
| e2e clips/s | `train_step` + logging fed by that loader |
| e2e/model | e2e clips/s / model-only clips/s (goal on one H100: at least 90% with 16 workers) |
| wait | fraction of the end-to-end time spent waiting for the next batch |
| mem GiB | peak allocated GPU memory during the timed model-only steps (CUDA only) |
| max batch | largest batch whose training step fits (`--find-max-batch`, CUDA only), with its peak memory |
| FFN/van | FFN step / vanilla step of the same setting in the same run (goal at most 1.8; floor 28/16 = 1.75) |
| FFN/van host | the same ratio by host CPU time (on a CPU with 1 thread: each step's own compute, whatever the neighbours do) |

Reproduce a section with its command (run from the repository root). CPU figures come from a shared
2-core machine: approximate, and only a check that every path runs; the goals are for one H100.
"""


# ------------------------------------------------------------------------------------------ options
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


def _csv(text: str) -> list[str]:
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
        return (f"{self.precision}{' channels_last' if self.channels_last else ''}"
                f"{' compile' if self.compile else ''}")


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
        for name in _csv(args.model):
            family, _, arch = name.partition("_")
            if family not in ("tsm", "ffn") or arch not in ARCHITECTURES:
                raise SystemExit(f"--model {name!r}: expected tsm_<arch> or ffn_<arch> with arch in "
                                 f"{sorted(ARCHITECTURES)}")
            models.append(("vanilla" if family == "tsm" else "ffn", arch))
        args.models = models
    else:
        recipes = _csv(args.recipes)
        unknown = sorted(set(recipes) - set(RECIPES))
        if unknown or not recipes:
            raise SystemExit(f"--recipes {args.recipes!r}: expected a comma list of {RECIPES}")
        args.models = [(recipe, args.arch) for recipe in recipes]
    precisions = _csv(args.precision)
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


# ------------------------------------------------------------------------------------------ device
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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(device: torch.device) -> tuple[float, str]:
    """Best TFLOP/s of large square matmuls: bf16 on CUDA (the tensor-core dense peak), fp32 on a CPU."""
    if device.type == "cuda":
        dtype, sizes, repeats = torch.bfloat16, (4096, 8192, 16384), 20
    else:
        dtype, sizes, repeats = torch.float32, (512, 1024), 5
    best, best_n = 0.0, 0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):  # warm-up: cuBLAS heuristics, clocks
            torch.mm(a, b)
        for _ in range(3):
            synchronize(device)
            start = time.perf_counter()
            for _ in range(repeats):
                torch.mm(a, b)
            synchronize(device)
            tflops = 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12
            if tflops > best:
                best, best_n = tflops, n
        del a, b
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return best, f"{str(dtype).removeprefix('torch.')} matmul {best_n}x{best_n}"


# ------------------------------------------------------------------------------------------ one model
@dataclass
class BenchTrainee(Trainee):
    """`ffnlib.train.Trainee` (the model, optimiser and step module as `fit` sets them up) and the
    forward MACs of one of its samples (every frame count of an FFN sample)."""

    forward_macs: float = 0.0


def make_config(recipe: str, arch: str, setting: Setting, args: argparse.Namespace, batch_size: int) -> TrainConfig:
    counts = [int(t) for t in _csv(args.frame_counts)]
    return TrainConfig.from_dict(dict(
        recipe=recipe, arch=arch, num_frames=args.num_frames, frame_counts=counts, frame_size=args.frame_size,
        resize_size=max(256, args.frame_size), batch_size=batch_size, num_workers=args.workers or 0,
        amp=PRECISIONS[setting.precision], channels_last=setting.channels_last, compile=setting.compile,
        device=args.device, seed=args.seed), source="benchmark options")


def build_trainee(config: TrainConfig, args: argparse.Namespace, device: torch.device) -> BenchTrainee:
    """`Trainee.build`, as `fit` calls it, with the benchmark's optimiser and compile mode."""
    torch.manual_seed(config.seed)
    trainee = Trainee.build(config, args.num_classes, device, fused=args.optimizer == "fused",
                            compile_mode=None if args.compile_mode == "default" else args.compile_mode)
    counts = config.train_frame_counts
    macs = flops(trainee.model, counts[0] if config.recipe == "vanilla" else counts, config.frame_size, args.num_classes)
    return BenchTrainee(**vars(trainee), forward_macs=macs)


def synthetic_batch(trainee: Trainee, batch_size: int, seed: int = 0) -> tuple:
    """(clip_T1, ..., target) as the loader yields it, already on the device: clips (B, C, T, S, S) float32."""
    generator = torch.Generator(device=trainee.device).manual_seed(seed)
    config, size = trainee.config, trainee.config.frame_size
    clips = [torch.randn(batch_size, 3, t, size, size, generator=generator, device=trainee.device)
             for t in config.train_frame_counts]  # (B, C, T, H, W)
    target = torch.randint(trainee.model.num_classes, (batch_size,), generator=generator, device=trainee.device)
    return (*clips, target)


def fit_step(trainee: Trainee, batch, sums: dict) -> None:
    """`train_step`, then the per-step logging of `fit` (each `.item()` waits for the device)."""
    t = trainee
    add_step(sums, *train_step(t.step_model, t.optimizer, t.scaler, batch, t.config, t.device, t.amp))


def step_without_sync(trainee: Trainee, batch, sums: dict) -> None:
    """`train_step` without its NaN check (a `.item()`) and without logging: nothing waits for the device."""
    t = trainee
    train_step(t.step_model, t.optimizer, t.scaler, batch, t.config, t.device, t.amp, check_finite=False)


class StepClock:
    """Per-step intervals: CUDA events on the stream (no synchronisation), the host clock on a CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self.marks, self.marks[1:])]
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def time_steps(trainee: Trainee, step_fn, batch, steps: int, warmup: int) -> dict:
    """Seconds a step over `steps` steps after `warmup` untimed ones: the median interval ("median"), the
    synchronised wall time over all of them ("mean") and the median of this process's CPU time a step
    ("cpu": on a busy shared CPU less disturbed than the wall clock; on CUDA the host's own work, spinning
    in synchronisations included). Peak memory is reset after the warm-up (cudnn autotuning excluded)."""
    sums: dict = {}
    for _ in range(warmup):
        step_fn(trainee, batch, sums)
    synchronize(trainee.device)
    if trainee.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainee.device)
    clock = StepClock(trainee.device)
    cpu = [time.process_time()]
    start = time.perf_counter()
    clock.mark()
    for _ in range(steps):
        step_fn(trainee, batch, sums)
        clock.mark()
        cpu.append(time.process_time())
    synchronize(trainee.device)
    wall = time.perf_counter() - start
    out = {"median": statistics.median(clock.intervals()), "mean": wall / steps,
           "cpu": statistics.median(b - a for a, b in zip(cpu, cpu[1:]))}
    if trainee.device.type == "cuda":
        out["peak_mem"] = torch.cuda.max_memory_allocated(trainee.device)
        out["reserved_mem"] = torch.cuda.max_memory_reserved(trainee.device)
    return out


# ------------------------------------------------------------------------------------------ max batch
def search_max_batch(fits, start: int, limit: int, resolution: int = 1) -> tuple[int, dict]:
    """Largest batch in [1, limit] for which `fits(batch)` is true, assuming fitting is monotone.

    `fits(b)` returns a truthy result (kept for the answer) or None/False. Doubles from `start` until
    a batch does not fit (or `limit`), then bisects until the bracket is at most `resolution` wide.
    Starting from a batch that does not fit, bisects below it. Returns (0, {}) when even 1 does not fit.
    Also returns every result by batch size.
    """
    tried: dict[int, object] = {}

    def ok(b: int) -> bool:
        if b not in tried:
            tried[b] = fits(b) or None
        return tried[b] is not None

    low, high = 0, limit + 1  # low fits (0: nothing known), high does not
    b = min(start, limit)
    while b <= limit:
        if ok(b):
            low = b
            if b == limit:
                break
            b = min(2 * b, limit)
        else:
            high = b
            break
    while high - low > (resolution if low >= resolution else 1):  # exact below `resolution`
        mid = (low + high) // 2
        if ok(mid):
            low = mid
        else:
            high = mid
    return low, {b: r for b, r in tried.items() if r is not None}


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_memory(trainee: Trainee | None = None) -> None:
    """Release what a step (finished or cut short by running out of memory) holds on the device."""
    if trainee is not None:
        trainee.optimizer.zero_grad(set_to_none=True)
        if trainee.scaler.is_enabled():  # a step cut short after unscale_ would leave the scaler refusing the next
            trainee.scaler = torch.amp.GradScaler(trainee.device.type, init_scale=trainee.scaler.get_scale())
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def find_max_batch(trainee: Trainee, args: argparse.Namespace) -> tuple[int, float | None]:
    """Largest batch whose two training steps (the second with the optimiser state) fit; its peak bytes."""

    def fits(batch_size: int):
        failed = False
        try:
            batch = synthetic_batch(trainee, batch_size)
            torch.cuda.reset_peak_memory_stats(trainee.device)
            for _ in range(2):
                step_without_sync(trainee, batch, {})
            synchronize(trainee.device)
            peak = torch.cuda.max_memory_allocated(trainee.device)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_oom(e):
                raise
            failed = True
        batch = None
        free_memory(trainee)  # outside the except block: its traceback holds the step's tensors
        log.info("  batch %d: %s", batch_size, "out of memory" if failed else f"fits, peak {peak / GIB:.1f} GiB")
        return None if failed else peak

    best, results = search_max_batch(fits, trainee.config.batch_size, args.max_batch_limit,
                                     args.max_batch_resolution)
    return best, results.get(best)


# ------------------------------------------------------------------------------------------ data
def training_loader(trainee: Trainee, root: Path, args: argparse.Namespace, num_batches: int):
    """The training view of the recipe over the clips, batched by `epoch_batches`, as `fit` reads it."""
    config = trainee.config
    dataset = train_view(config, SSv2(root, "train"))
    batches = epoch_batches(config, len(dataset), 0, num_batches, World())
    return make_loader(dataset, batches=batches, num_workers=args.workers, device=trainee.device,
                       prefetch_factor=args.prefetch_factor, persistent_workers=args.workers > 0)


def loader_throughput(trainee: Trainee, root: Path, args: argparse.Namespace) -> float:
    """Clips/s of the loader alone, not counting the first `workers` batches (they all start together)."""
    skip = max(1, args.workers)
    num_batches = skip + args.e2e_steps
    loader = training_loader(trainee, root, args, num_batches)
    iterator = iter(loader)
    start = None
    for i in range(num_batches):
        next(iterator)
        if i == skip - 1:
            start = time.perf_counter()
    seconds = time.perf_counter() - start
    del iterator, loader
    gc.collect()
    return args.e2e_steps * trainee.config.batch_size / seconds


def end_to_end(trainee: Trainee, root: Path, args: argparse.Namespace) -> dict:
    """`fit_step` fed by the loader: seconds waiting for each batch and computing each step."""
    loader = training_loader(trainee, root, args, args.warmup + args.e2e_steps)
    iterator = iter(loader)
    sums: dict = {}
    waits, computes = [], []
    for i in range(args.warmup + args.e2e_steps):
        t0 = time.perf_counter()
        batch = next(iterator)
        t1 = time.perf_counter()
        fit_step(trainee, batch, sums)
        synchronize(trainee.device)  # fit_step already waited for the loss; this makes it explicit
        t2 = time.perf_counter()
        if i >= args.warmup:
            waits.append(t1 - t0)
            computes.append(t2 - t1)
    del iterator, loader, batch
    gc.collect()
    total = sum(waits) + sum(computes)
    steps = len(waits)
    return {"e2e_step_s": total / steps, "e2e_clips_per_s": steps * trainee.config.batch_size / total,
            "e2e_frames_per_s": steps * trainee.config.batch_size * trainee.frames_per_clip / total,
            "data_wait_s": sum(waits) / steps, "data_wait_fraction": sum(waits) / total}


# ------------------------------------------------------------------------------------------ one configuration
def measure(recipe: str, arch: str, setting: Setting, args: argparse.Namespace, device: torch.device,
            peak_tflops: float, clip_root: Path | None, loader_cache: dict | None = None) -> dict:
    """Every figure of one (model, setting) as a flat dict: one JSON line.

    `loader_cache` keeps the loader-only clips/s by recipe across the settings of one run: the loader
    does not depend on the model, the precision, channels_last or compile.
    """
    config = make_config(recipe, arch, setting, args, args.batch_size)
    row = {"model": config.network, "arch": arch, "recipe": recipe,
           "frame_counts": list(config.train_frame_counts), "batch_size": config.batch_size,
           "frame_size": config.frame_size, "precision": setting.precision, "channels_last": setting.channels_last,
           "compile": setting.compile, "compile_mode": args.compile_mode if setting.compile else None,
           "optimizer": args.optimizer, "num_classes": args.num_classes, "steps": args.steps, "warmup": args.warmup}
    log.info("%s, %s, batch %d x %d px", config.network, setting.label, config.batch_size, config.frame_size)
    trainee = build_trainee(config, args, device)
    frames = config.batch_size * trainee.frames_per_clip
    train_flop = 3 * 2 * trainee.forward_macs * config.batch_size
    row.update(frames_per_clip=trainee.frames_per_clip, frames_per_step=frames,
               forward_gmacs_per_clip=trainee.forward_macs / 1e9, train_tflop_per_step=train_flop / 1e12)
    batch = None
    try:
        batch = synthetic_batch(trainee, config.batch_size, args.seed)
        timed = time_steps(trainee, fit_step, batch, args.steps, args.warmup)
        step = timed["median"]
        row.update(step_s=step, step_s_mean=timed["mean"], step_cpu_s=timed["cpu"], clips_per_s=config.batch_size / step,
                   frames_per_s=frames / step, achieved_tflops=train_flop / step / 1e12,
                   peak_tflops=peak_tflops, mfu=train_flop / step / 1e12 / peak_tflops if peak_tflops else None,
                   peak_mem_gib=timed["peak_mem"] / GIB if "peak_mem" in timed else None,
                   reserved_mem_gib=timed["reserved_mem"] / GIB if "reserved_mem" in timed else None)
        if args.sync_variant:
            nosync = time_steps(trainee, step_without_sync, batch, args.steps, max(1, args.warmup // 2))
            row.update(step_s_nosync=nosync["median"], step_cpu_s_nosync=nosync["cpu"],
                       sync_cost=1 - nosync["median"] / step)
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not is_oom(e):
            raise
        row["error"] = f"out of memory at batch {config.batch_size}"
        log.warning("  %s", row["error"])
    batch = None
    free_memory(trainee)  # outside the except block: its traceback holds the step's tensors

    if args.e2e and clip_root is not None and "error" not in row:
        row.update(workers=args.workers, prefetch_factor=args.prefetch_factor, e2e_steps=args.e2e_steps)
        loader_cache = {} if loader_cache is None else loader_cache
        if recipe not in loader_cache:
            loader_cache[recipe] = loader_throughput(trainee, clip_root, args)
        row["loader_clips_per_s"] = loader_cache[recipe]
        row.update(end_to_end(trainee, clip_root, args))
        row["e2e_vs_model"] = row["e2e_clips_per_s"] / row["clips_per_s"]
        free_memory(trainee)

    if args.find_max_batch:
        if device.type != "cuda":
            log.info("  --find-max-batch: skipped (CUDA only)")
        else:
            log.info("  searching the largest batch (two steps each)")
            best, peak = find_max_batch(trainee, args)
            row.update(max_batch=best, max_batch_peak_mem_gib=peak / GIB if peak else None)
    del trainee
    free_memory()
    if setting.compile:
        torch._dynamo.reset()
    return row


# ------------------------------------------------------------------------------------------ report
COLUMNS = (  # (title, key, format)
    ("model", "model", "{}"), ("batch", "batch_size", "{}"), ("px", "frame_size", "{}"),
    ("prec", "precision", "{}"), ("CL", "channels_last", "yn"), ("compile", "compile", "yn"),
    ("step ms", "step_s", "ms"), ("no-sync ms", "step_s_nosync", "ms"), ("host ms", "step_cpu_s", "ms"),
    ("clips/s", "clips_per_s", "num"),
    ("frames/s", "frames_per_s", "num"), ("TFLOP/s", "achieved_tflops", "num"), ("MFU", "mfu", "%"),
    ("loader clips/s", "loader_clips_per_s", "num"), ("e2e clips/s", "e2e_clips_per_s", "num"),
    ("e2e/model", "e2e_vs_model", "%"), ("wait", "data_wait_fraction", "%"), ("mem GiB", "peak_mem_gib", "{:.1f}"),
    ("max batch", "max_batch", "maxb"), ("FFN/van", "ffn_vs_vanilla", "{:.2f}"),
    ("FFN/van host", "ffn_vs_vanilla_cpu", "{:.2f}"),
)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if key == "step_s" and "error" in row:
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
    return [title for title, _, _ in COLUMNS], [[_cell(r, key, fmt) for _, key, fmt in COLUMNS] for r in rows]


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


def goal_lines(rows: list[dict], device: torch.device) -> list[str]:
    """The issue's goals, judged on the FFN rows (assessed on CUDA only: they are set for one H100)."""
    ffn = [r for r in rows if r["recipe"] == "ffn" and "step_s" in r]
    if not ffn:
        return []
    best = max(ffn, key=lambda r: r["frames_per_s"])
    where = f"best FFN row: {best['model']}, batch {best['batch_size']}, {Setting(best['precision'], best['channels_last'], best['compile']).label}"

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
        f"- at least {GOAL_FRAMES_PER_S:,} frames/s: {best['frames_per_s']:,.0f}: {verdict(best['frames_per_s'] >= GOAL_FRAMES_PER_S)}",
        f"- about {GOAL_MFU:.0%} MFU: " + (f"{mfu:.1%}: {verdict(mfu >= GOAL_MFU)}" if mfu is not None else verdict(None)),
        f"- end-to-end at least {GOAL_E2E_RATIO:.0%} of model-only" + (f" ({best.get('workers')} workers)" if e2e else "")
        + ": " + (f"{e2e:.1%}: {verdict(e2e >= GOAL_E2E_RATIO)}" if e2e is not None else verdict(None)),
        f"- FFN step at most {GOAL_FFN_RATIO}x the vanilla step: "
        + (f"{ratio:.2f}x: {verdict(ratio <= GOAL_FFN_RATIO)}" if ratio is not None else verdict(None)),
    ]


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


def add_ratios(rows: list[dict]) -> None:
    """FFN step / vanilla step for rows of the same arch, batch and setting."""
    def key(r):
        return (r["arch"], r["batch_size"], r["frame_size"], r["precision"], r["channels_last"], r["compile"])

    vanilla = {key(r): r for r in rows if r["recipe"] == "vanilla" and "step_s" in r}
    for r in rows:
        if r["recipe"] == "ffn" and "step_s" in r and key(r) in vanilla:
            r["ffn_vs_vanilla"] = r["step_s"] / vanilla[key(r)]["step_s"]
            r["ffn_vs_vanilla_cpu"] = r["step_cpu_s"] / vanilla[key(r)]["step_cpu_s"]
            r["ffn_floor"] = r["frames_per_clip"] / vanilla[key(r)]["frames_per_clip"]


# ------------------------------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> list[dict]:
    device, chosen = resolve(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # as fit does when not deterministic
    command = typed_command() or resolved_command(args)
    header = {"benchmark": "train", "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "device": device_name(device), "device_type": device.type, "torch": torch.__version__,
              "cuda": torch.version.cuda if device.type == "cuda" else None, "threads": torch.get_num_threads(),
              "command": command, "resolved_command": resolved_command(args), "note": args.note,
              "defaults": ", ".join(chosen)}
    print(f"train benchmark on {header['device']} ({device}), torch {torch.__version__}, "
          f"torch threads: {header['threads']}")
    if chosen:
        print(f"defaults chosen for {device.type}: {header['defaults']}")
    print(f"rerun with: {header['resolved_command']}")

    if args.peak == "measure":
        peak, source = measure_peak(device)
    else:
        try:
            peak, source = float(args.peak), "given"
        except ValueError:
            raise SystemExit(f"--peak {args.peak!r}: expected 'measure' or TFLOP/s") from None
    header.update(peak_tflops=peak, peak_source=source)
    print(f"peak: {peak:.2f} TFLOP/s ({source})")

    rows = []
    with tempfile.TemporaryDirectory(prefix="ffn-bench-train-") as tmp:
        clip_root = None
        if args.e2e:
            clip_root = args.clip_dir or Path(tmp)
            start = time.perf_counter()
            write_ssv2_like(clip_root, args.clips, num_video_frames=args.clip_frames, height=args.clip_height,
                            width=args.clip_width, num_classes=args.num_classes, seed=args.seed,
                            workers=args.clip_workers)
            header["clips"] = (f"{args.clips} SSv2-like clips {args.clip_width}x{args.clip_height}, "
                               f"{args.clip_frames} frames, VP9 crf {clips.CRF} at {clips.FPS} fps")
            print(f"clips: {header['clips']} in {clip_root} ({time.perf_counter() - start:.0f} s)")
        loader_cache: dict = {}
        for setting in args.settings:
            for recipe, arch in args.models:
                rows.append(measure(recipe, arch, setting, args, device, peak, clip_root, loader_cache))
    add_ratios(rows)
    for row in rows:
        row.update({k: header[k] for k in ("benchmark", "date", "device", "device_type", "torch", "cuda", "threads",
                                           "command", "resolved_command", "peak_source")})

    print()
    print(text_table(rows))
    goals = goal_lines(rows, device)
    if goals:
        print("\n" + "\n".join(goals))
    measured = [r for r in rows if "step_s" in r]
    for recipe in RECIPES:
        candidates = [r for r in measured if r["recipe"] == recipe]
        if len(candidates) > 1:
            best = max(candidates, key=lambda r: r.get("e2e_clips_per_s") or r["clips_per_s"])
            print(f"fastest {recipe}: {Setting(best['precision'], best['channels_last'], best['compile']).label}")

    out = DEFAULT_OUT if args.out is None else (Path(args.out) if args.out else None)
    jsonl = DEFAULT_JSONL if args.jsonl is None else (Path(args.jsonl) if args.jsonl else None)
    if jsonl is not None:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(jsonl, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"\n{len(rows)} JSON lines appended to {jsonl}")
    if out is not None:
        append_results(out, header, rows, goals)
        print(f"table appended to {out}")
    return rows

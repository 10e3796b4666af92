"""Training throughput of vanilla TSM (one 16-frame clip) and FFN (4+8+16 frames): model-only, end to end,
frames/s, MFU, peak memory. Built from the training loop's own pieces (`build_model`, `make_optimizer`,
`train_step`, `autocast_dtype`, `train_view`, `epoch_batches`), so it measures what `fit` does.

For each setting (precision x channels_last x compile, each may be a list) and each recipe:

  model-only  `train_step` on synthetic uint8 clips already on the device (normalised in the step, as
              `fit` normalises each batch on the device), followed by the per-step logging
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

The options are `ffnlib.bench.train_options`; the clocks, the memory probe and the max-batch search
`ffnlib.bench.timing`; the columns and the RESULTS.md sections `ffnlib.bench.report`.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ffnlib.bench import clips
from ffnlib.bench.clips import write_ssv2_like
from ffnlib.bench.report import GIB, append_results, device_name, goal_lines, text_table
from ffnlib.bench.timing import (PeakMemory, StepClock, free_device_memory, is_oom, lap, matmul_peak_tflops,
                                 search_max_batch)
from ffnlib.bench.train_options import (DEFAULT_JSONL, DEFAULT_OUT, PRECISIONS, RECIPES, Setting, add_arguments,
                                        comma_list, resolve, resolved_command, typed_command)
from ffnlib.datasets import SSv2
from ffnlib.models import flops
from ffnlib.train import (TrainConfig, Trainee, World, add_step, epoch_batches, make_loader, train_step,
                          train_view)

log = logging.getLogger(__name__)

__all__ = ["add_arguments", "measure", "run"]


# ------------------------------------------------------------------------------------------ one model
@dataclass
class BenchTrainee(Trainee):
    """`ffnlib.train.Trainee` (the model, optimiser and step module as `fit` sets them up) and the
    forward MACs of one of its samples (every frame count of an FFN sample)."""

    forward_macs: float = 0.0


def make_config(recipe: str, arch: str, setting: Setting, args: argparse.Namespace, batch_size: int) -> TrainConfig:
    counts = [int(t) for t in comma_list(args.frame_counts)]
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
    """(clip_T1, ..., target) as the loader yields it, already on the device: clips (B, C, T, S, S) uint8,
    which the step normalises (`ffnlib.train.data.model_input`), as in `fit`."""
    generator = torch.Generator(device=trainee.device).manual_seed(seed)
    config, size = trainee.config, trainee.config.frame_size
    clips = [torch.randint(0, 256, (batch_size, 3, t, size, size), generator=generator, device=trainee.device,
                           dtype=torch.uint8) for t in config.train_frame_counts]  # (B, C, T, H, W)
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


def time_steps(trainee: Trainee, step_fn, batch, steps: int, warmup: int) -> dict:
    """Seconds a step over `steps` steps after `warmup` untimed ones: the median interval ("median"), the
    synchronised wall time over all of them ("mean") and the median of this process's CPU time a step
    ("cpu": on a busy shared CPU less disturbed than the wall clock; on CUDA the host's own work, spinning
    in synchronisations included). Peak memory ("peak_mem", "reserved_mem", CUDA) is taken after the
    warm-up (cudnn autotuning excluded)."""
    sums: dict = {}
    for _ in range(warmup):
        step_fn(trainee, batch, sums)

    def timed_steps():
        clock.mark()
        for _ in range(steps):
            step_fn(trainee, batch, sums)
            clock.mark()

    clock = StepClock(trainee.device)
    with PeakMemory(trainee.device) as memory:
        wall = lap(timed_steps, trainee.device).wall
    out = {"median": statistics.median(clock.intervals()), "mean": wall / steps,
           "cpu": statistics.median(clock.cpu_intervals())}
    if memory.allocated is not None:
        out["peak_mem"], out["reserved_mem"] = memory.allocated, memory.reserved
    return out


# ------------------------------------------------------------------------------------------ max batch
def reset_trainee(trainee: Trainee | None = None) -> None:
    """Release what a step (finished or cut short by running out of memory) holds on the device."""
    if trainee is not None:
        trainee.optimizer.zero_grad(set_to_none=True)
        if trainee.scaler.is_enabled():  # a step cut short after unscale_ would leave the scaler refusing the next
            trainee.scaler = torch.amp.GradScaler(trainee.device.type, init_scale=trainee.scaler.get_scale())
    free_device_memory()


def find_max_batch(trainee: Trainee, args: argparse.Namespace) -> tuple[int, float | None]:
    """Largest batch whose two training steps (the second with the optimiser state) fit; its peak bytes."""

    def fits(batch_size: int):
        failed = False
        try:
            batch = synthetic_batch(trainee, batch_size)
            with PeakMemory(trainee.device) as memory:
                for _ in range(2):
                    step_without_sync(trainee, batch, {})
            peak = memory.allocated
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_oom(e):
                raise
            failed = True
        batch = None
        reset_trainee(trainee)  # outside the except block: its traceback holds the step's tensors
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
    loader = training_loader(trainee, root, args, skip + args.e2e_steps)
    iterator = iter(loader)
    for _ in range(skip):
        next(iterator)

    def consume():
        for _ in range(args.e2e_steps):
            next(iterator)  # each batch dropped at once

    seconds = lap(consume).wall
    iterator = loader = None  # the workers end with them
    gc.collect()
    return args.e2e_steps * trainee.config.batch_size / seconds


def end_to_end(trainee: Trainee, root: Path, args: argparse.Namespace) -> dict:
    """`fit_step` fed by the loader: seconds waiting for each batch and computing each step."""
    loader = training_loader(trainee, root, args, args.warmup + args.e2e_steps)
    iterator = iter(loader)
    sums: dict = {}
    waits, computes = [], []
    for i in range(args.warmup + args.e2e_steps):
        wait = lap(lambda: next(iterator))
        compute = lap(lambda: fit_step(trainee, wait.result, sums), trainee.device)  # fit_step waits for the loss too
        if i >= args.warmup:
            waits.append(wait.wall)
            computes.append(compute.wall)
    iterator = loader = wait = None  # the workers end with them
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
    reset_trainee(trainee)  # outside the except block: its traceback holds the step's tensors

    if args.e2e and clip_root is not None and "error" not in row:
        row.update(workers=args.workers, prefetch_factor=args.prefetch_factor, e2e_steps=args.e2e_steps)
        loader_cache = {} if loader_cache is None else loader_cache
        if recipe not in loader_cache:
            loader_cache[recipe] = loader_throughput(trainee, clip_root, args)
        row["loader_clips_per_s"] = loader_cache[recipe]
        row.update(end_to_end(trainee, clip_root, args))
        row["e2e_vs_model"] = row["e2e_clips_per_s"] / row["clips_per_s"]
        reset_trainee(trainee)

    if args.find_max_batch:
        if device.type != "cuda":
            log.info("  --find-max-batch: skipped (CUDA only)")
        else:
            log.info("  searching the largest batch (two steps each)")
            best, peak = find_max_batch(trainee, args)
            row.update(max_batch=best, max_batch_peak_mem_gib=peak / GIB if peak else None)
    del trainee
    reset_trainee()
    if setting.compile:
        torch._dynamo.reset()
    return row


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
        peak, source = matmul_peak_tflops(device)
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
            written = lap(lambda: write_ssv2_like(
                clip_root, args.clips, num_video_frames=args.clip_frames, height=args.clip_height,
                width=args.clip_width, num_classes=args.num_classes, seed=args.seed, workers=args.clip_workers))
            header["clips"] = (f"{args.clips} SSv2-like clips {args.clip_width}x{args.clip_height}, "
                               f"{args.clip_frames} frames, VP9 crf {clips.CRF} at {clips.FPS} fps")
            print(f"clips: {header['clips']} in {clip_root} ({written.wall:.0f} s)")
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

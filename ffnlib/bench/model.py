"""Forward+backward time of one FFN step (clips of 4, 8 and 16 frames, temporal distillation) against one
vanilla TSM step (one 16-frame clip, cross-entropy) on the same architecture and batch.

The ratio's floor is the frame ratio (4+8+16)/16 = 1.75: FFN sees 28 frames per video where TSM sees
16. Above it is what three smaller passes cost over one big one (per-call overhead, kernels less
efficient on fewer frames), plus FFN's own parts (private BN, adaconv). To tell the two apart a third
step is timed: the vanilla TSM run on the same three clips, one forward+backward each ("vanilla per
count"). FFN / vanilla-per-count near 1 means FFN's own parts cost next to nothing and the rest is the
splitting into passes.

Steps alternate between the models and medians are kept, so a neighbour's load hits all of them. Two
clocks: wall time, and this process's CPU time, which a busy shared machine disturbs less (with
--threads 1 it is the step's own compute; with more threads it adds up the threads, waits included).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ffnlib.losses import temporal_distillation_by_count
from ffnlib.models import ARCHITECTURES, FFNResNet, create_model, flops, num_parameters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="small", choices=sorted(ARCHITECTURES),
                        help="architecture: tsm_<arch> vs ffn_<arch> (default: small)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8, 16, 32],
                        help="videos per step, one measurement each (default: 8 16 32)")
    parser.add_argument("--frame-size", type=int, default=32, help="side of the square frames (default: 32)")
    parser.add_argument("--num-classes", type=int, default=174)
    parser.add_argument("--frame-counts", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first (default: 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")


def _step(model, clips, target) -> None:
    """One forward+backward: temporal distillation for an FFN on all its clips; for a TSM, cross-entropy
    on each clip in turn (one clip: the vanilla step; several: the vanilla-per-count step)."""
    model.zero_grad(set_to_none=True)
    if isinstance(model, FFNResNet):
        logits = model(clips)
        temporal_distillation_by_count({c.shape[2]: z for c, z in zip(clips, logits)}, target).total.backward()
        return
    for clip in clips:
        torch.nn.functional.cross_entropy(model(clip), target).backward()


def step_times(arch: str = "small", batch_size: int = 8, frame_size: int = 32, num_classes: int = 174,
               frame_counts=(4, 8, 16), steps: int = 10, warmup: int = 2, device: str = "cpu",
               seed: int = 0, threads: int | None = None) -> dict:
    """Median seconds of one vanilla step (tsm_<arch>, the largest count), one FFN step (ffn_<arch>,
    every count) and one vanilla step per count on the FFN's clips, by wall clock and by process CPU
    time, on random clips (B, 3, T, S, S).

    `threads` sets torch's CPU threads for the measurement only (None: leave them).
    Returns {"wall": {"vanilla": s, "ffn": s, "vanilla_per_count": s}, "cpu": {...},
    "macs": {"vanilla": ..., "ffn": ...} (forward MACs per video), "parameters": {...}}.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _step_times(arch, batch_size, frame_size, num_classes, frame_counts, steps, warmup, device, seed)
    finally:
        torch.set_num_threads(before)


def _step_times(arch, batch_size, frame_size, num_classes, frame_counts, steps, warmup, device, seed) -> dict:
    device = torch.device(device)
    torch.manual_seed(seed)
    counts = sorted(frame_counts)
    vanilla = create_model(f"tsm_{arch}", num_classes).to(device).train()
    ffn = create_model(f"ffn_{arch}", num_classes, frame_counts=counts).to(device).train()

    def clip(t):
        return torch.randn(batch_size, 3, t, frame_size, frame_size, device=device)  # (B, C, T, H, W)

    target = torch.randint(num_classes, (batch_size,), device=device)
    clips = [clip(t) for t in counts]
    runs = {"vanilla": (vanilla, clips[-1:]), "ffn": (ffn, clips), "vanilla_per_count": (vanilla, clips)}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + steps):
        for name, (model, clips) in runs.items():  # alternate, so that outside load hits both
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            _step(model, clips, target)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    return {"wall": {name: statistics.median(t) for name, t in wall.items()},
            "cpu": {name: statistics.median(t) for name, t in cpu.items()},
            "macs": {"vanilla": flops(vanilla, counts[-1], frame_size), "ffn": flops(ffn, counts, frame_size)},
            "parameters": {"vanilla": num_parameters(vanilla), "ffn": num_parameters(ffn)}}


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    counts = sorted(args.frame_counts)
    s = args.frame_size
    labels = {"vanilla": f"vanilla {counts[-1]}F step", "ffn": f"FFN {'+'.join(map(str, counts))} step",
              "vanilla_per_count": f"vanilla {','.join(map(str, counts))}F passes"}
    floor = sum(counts) / counts[-1]
    for i, b in enumerate(args.batch_size):
        res = step_times(args.arch, b, s, args.num_classes, counts, args.steps, args.warmup, args.device)
        med, macs, params = {k: res[k] for k in ("wall", "cpu")}, res["macs"], res["parameters"]
        if i == 0:
            print(f"arch {args.arch}: tsm {params['vanilla']:,} / ffn {params['ffn']:,} parameters; "
                  f"{s}x{s} frames; {torch.get_num_threads()} threads on {args.device}; median of {args.steps} "
                  f"steps; forward MACs ratio {macs['ffn'] / macs['vanilla']:.3f}")
        print(f"batch {b}:")
        for name, label in labels.items():
            gmacs = f"   (forward {macs[name] / 1e9 * b:.3f} GMACs a batch)" if name in macs else f"   ({len(counts)} passes)"
            print(f"  {label:20s} wall {1e3 * med['wall'][name]:8.1f} ms   cpu {1e3 * med['cpu'][name]:8.1f} ms{gmacs}")
        print(f"  ratio FFN / vanilla: wall {med['wall']['ffn'] / med['wall']['vanilla']:.2f}, "
              f"cpu {med['cpu']['ffn'] / med['cpu']['vanilla']:.2f}  (floor {floor:.2f} = "
              f"{sum(counts)}/{counts[-1]} frames)")
        print(f"  ratio FFN / vanilla per count: wall {med['wall']['ffn'] / med['wall']['vanilla_per_count']:.2f}, "
              f"cpu {med['cpu']['ffn'] / med['cpu']['vanilla_per_count']:.2f}  (1: FFN's own parts cost nothing)")

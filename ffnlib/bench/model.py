"""Forward+backward time of one FFN step (clips of 4, 8 and 16 frames, temporal distillation) against one
vanilla TSM step (one 16-frame clip, cross-entropy) on the same architecture and batch.

The ratio's floor is the frame ratio (4+8+16)/16 = 1.75: FFN sees 28 frames per video where TSM sees
16; above it is what three smaller batches cost over one (per-call overhead, less efficient kernels),
plus FFN's own parts (private BN, adaconv), which cost next to nothing.

Steps alternate between the two models and medians are kept, so a neighbour's load hits both. Two
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
    parser.add_argument("--batch-size", type=int, default=8, help="videos per step (default: 8)")
    parser.add_argument("--frame-size", type=int, default=32, help="side of the square frames (default: 32)")
    parser.add_argument("--num-classes", type=int, default=174)
    parser.add_argument("--frame-counts", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first (default: 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")


def _step(model, clips, target) -> None:
    """One forward+backward: cross-entropy for a TSM on one clip, temporal distillation for an FFN."""
    if isinstance(model, FFNResNet):
        logits = model(clips)
        loss = temporal_distillation_by_count({c.shape[2]: z for c, z in zip(clips, logits)}, target).total
    else:
        loss = torch.nn.functional.cross_entropy(model(clips[0]), target)
    model.zero_grad(set_to_none=True)
    loss.backward()


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    counts = sorted(args.frame_counts)
    vanilla = create_model(f"tsm_{args.arch}", args.num_classes).to(device).train()
    ffn = create_model(f"ffn_{args.arch}", args.num_classes, frame_counts=counts).to(device).train()
    b, s = args.batch_size, args.frame_size

    def clip(t):
        return torch.randn(b, 3, t, s, s, device=device)  # (B, C, T, H, W)

    target = torch.randint(args.num_classes, (b,), device=device)
    runs = {"vanilla": (vanilla, [clip(counts[-1])]), "ffn": (ffn, [clip(t) for t in counts])}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(args.warmup + args.steps):
        for name, (model, clips) in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            _step(model, clips, target)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

    med = {clock: {name: statistics.median(t) for name, t in times.items()}
           for clock, times in (("wall", wall), ("cpu", cpu))}
    macs = {"vanilla": flops(vanilla, counts[-1], s), "ffn": flops(ffn, counts, s)}
    print(f"arch {args.arch}: tsm {num_parameters(vanilla):,} / ffn {num_parameters(ffn):,} parameters; "
          f"batch {b} x {s}x{s} frames; {torch.get_num_threads()} threads on {device}; median of {args.steps}")
    labels = {"vanilla": f"vanilla {counts[-1]}F step", "ffn": f"FFN {'+'.join(map(str, counts))} step"}
    for name, label in labels.items():
        print(f"  {label:20s} wall {1e3 * med['wall'][name]:8.1f} ms   cpu {1e3 * med['cpu'][name]:8.1f} ms   "
              f"(forward {macs[name] / 1e9 * b:.3f} GMACs)")
    print(f"ratio FFN / vanilla: wall {med['wall']['ffn'] / med['wall']['vanilla']:.2f}, "
          f"cpu {med['cpu']['ffn'] / med['cpu']['vanilla']:.2f}  (floor {sum(counts) / counts[-1]:.2f} = "
          f"{sum(counts)}/{counts[-1]} frames; forward MACs ratio {macs['ffn'] / macs['vanilla']:.3f})")

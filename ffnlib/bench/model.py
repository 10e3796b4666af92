"""Forward+backward time of one FFN step (clips of 4, 8 and 16 frames, temporal distillation) against one
vanilla TSM step (one 16-frame clip, cross-entropy) on the same architecture and batch.

The FFN step is the one `fit` takes (`ffnlib.train.step.backward_per_clip`): the 16F teacher's forward
and backward, then each student's, so that one clip's activations are alive at a time. Also timed:
  - "FFN joint": one forward of all three clips and one backward of the summed loss (the step `fit`
    took before it went clip by clip), to show what going clip by clip gains;
  - "vanilla per count": the vanilla TSM on the same three clips, one forward+backward each.
The ratio's floor is the frame ratio (4+8+16)/16 = 1.75: FFN sees 28 frames per video where TSM sees
16. Above it is what three smaller passes cost over one big one (per-call overhead, kernels less
efficient on fewer frames), plus FFN's own parts (private BN, adaconv, the KL terms): FFN / vanilla
per count near 1 means FFN's own parts cost next to nothing.

Steps alternate between the runs, one round at a time, so that a neighbour's load hits all of them;
each ratio is the median over rounds of the ratio within a round (a load that comes and goes moves
both sides of a round together), and each time is the median over rounds. Two clocks: wall time,
and this process's CPU time, which a busy shared machine disturbs less (with --threads 1 it is the
step's own compute; with more threads it adds up the threads, waits included).
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from ffnlib.bench.timing import interleaved
from ffnlib.losses import temporal_distillation_by_count
from ffnlib.models import ARCHITECTURES, create_model, flops, num_parameters
from ffnlib.train import backward_per_clip


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


def _tsm_step(model, clips, target) -> None:
    """Cross-entropy on each clip in turn, one forward+backward each (one clip: the vanilla step)."""
    for clip in clips:
        F.cross_entropy(model(clip), target).backward()


def _ffn_joint_step(model, clips, target) -> None:
    temporal_distillation_by_count({c.shape[2]: z for c, z in zip(clips, model(clips))}, target).total.backward()


def _ffn_step(model, clips, target) -> None:
    backward_per_clip(model, {c.shape[2]: c for c in clips}, target, distill=True)


def step_times(arch: str = "small", batch_size: int = 8, frame_size: int = 32, num_classes: int = 174,
               frame_counts=(4, 8, 16), steps: int = 10, warmup: int = 2, device: str = "cpu",
               seed: int = 0, threads: int | None = None) -> dict:
    """Median seconds of one vanilla step (tsm_<arch>, the largest count), one FFN step as `fit` takes it
    (ffn_<arch>, every count, clip by clip), one FFN step with a joint backward, and one vanilla step
    per count on the FFN's clips, by wall clock and by process CPU time, on random clips (B, 3, T, S, S).

    `threads` sets torch's CPU threads for the measurement only (None: leave them).
    Returns {"wall": {run: s}, "cpu": {run: s}, "wall_ratio": {run: median over rounds of run / vanilla},
    "cpu_ratio": {...}, "macs": {"vanilla": ..., "ffn": ...} (forward MACs per video),
    "parameters": {...}}, the runs being vanilla, ffn, ffn_joint and vanilla_per_count.
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
    runs = {"vanilla": (_tsm_step, vanilla, clips[-1:]), "ffn": (_ffn_step, ffn, clips),
            "ffn_joint": (_ffn_joint_step, ffn, clips), "vanilla_per_count": (_tsm_step, vanilla, clips)}
    rounds = interleaved({name: (lambda step=step, model=model, inputs=inputs: step(model, inputs, target))
                          for name, (step, model, inputs) in runs.items()},
                         steps, warmup, device, before_each=lambda name: runs[name][1].zero_grad(set_to_none=True))
    return {"wall": rounds.medians("wall"), "cpu": rounds.medians("cpu"),
            "wall_ratio": rounds.ratios("vanilla", "wall"), "cpu_ratio": rounds.ratios("vanilla", "cpu"),
            "macs": {"vanilla": flops(vanilla, counts[-1], frame_size), "ffn": flops(ffn, counts, frame_size)},
            "parameters": {"vanilla": num_parameters(vanilla), "ffn": num_parameters(ffn)}}


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    counts = sorted(args.frame_counts)
    s = args.frame_size
    labels = {"vanilla": f"vanilla {counts[-1]}F step", "ffn": f"FFN {'+'.join(map(str, counts))} step",
              "ffn_joint": "FFN joint backward", "vanilla_per_count": f"vanilla {','.join(map(str, counts))}F passes"}
    floor = sum(counts) / counts[-1]
    for i, b in enumerate(args.batch_size):
        res = step_times(args.arch, b, s, args.num_classes, counts, args.steps, args.warmup, args.device)
        macs, params = res["macs"], res["parameters"]
        macs_of = {"vanilla": macs["vanilla"], "ffn": macs["ffn"], "ffn_joint": macs["ffn"]}
        if i == 0:
            print(f"arch {args.arch}: tsm {params['vanilla']:,} / ffn {params['ffn']:,} parameters; "
                  f"{s}x{s} frames; {torch.get_num_threads()} threads on {args.device}; medians of {args.steps} "
                  f"rounds; forward MACs ratio {macs['ffn'] / macs['vanilla']:.3f}")
        print(f"batch {b}:")
        for name, label in labels.items():
            work = (f"forward {macs_of[name] / 1e9 * b:.3f} GMACs a batch" if name in macs_of
                    else f"{len(counts)} passes")
            ratio = "" if name == "vanilla" else f"   / vanilla: wall {res['wall_ratio'][name]:.2f}, cpu {res['cpu_ratio'][name]:.2f}"
            print(f"  {label:22s} wall {1e3 * res['wall'][name]:8.1f} ms   cpu {1e3 * res['cpu'][name]:8.1f} ms"
                  f"   ({work}){ratio}")
        print(f"  ratio FFN / vanilla: wall {res['wall_ratio']['ffn']:.2f}, cpu {res['cpu_ratio']['ffn']:.2f}  "
              f"(floor {floor:.2f} = {sum(counts)}/{counts[-1]} frames; FFN as fit trains it, clip by clip)")

"""Data benchmark: what a 4+8+16 FFN sample costs compared with a plain 16-frame sample.

Writes SSv2-like clips (427x240 lossy VP9 at 12 fps, about 48 frames: a panning textured scene with a
moving object and sensor noise) into a temporary or given folder, in the SSv2 layout, then reads them
through the real dataset classes and transforms (frame_size 224, resize_size 256 by default):

    VideoClips(num_frames=16)              one 16-frame clip per sample
    MultiFrameClips(frame_counts=(4, 8, 16)) three clips per sample, one decode, one crop

and prints decode frames/s, samples/s (by the wall clock, and the CPU time a sample costs a worker,
which a busy machine disturbs less), the bytes a sample ships through the loader and the ratio of
their costs. The goal is a 4+8+16 sample costing at most 1.10x a 16-frame one: decoding the whole
video is shared, so only the RGB conversion and resizing of the extra frames (the union of the three
index sets, about 23.6 distinct frames instead of 16) and gathering 28 output frames instead of 16
should add. Clips stay uint8 (normalised on the device, once per batch, by the training loop): the
loader ships 1 byte a value, not float32's 4, and a worker spends nothing on arithmetic. A breakdown
per stage shows where the time goes.

The same clips are also written as JPEG frame folders in the Something-Something V1 layout (the
frames before VP9 encoding, JPEG quality `--jpeg-quality`) and read through the SSv1 reader: JPEG
decoding frames/s with the decoder ffnlib uses (simplejpeg, libjpeg-turbo) and with Pillow, and the
same two samples from frame folders, where only the sampled frames are decoded.

Torch runs on one thread by default, as in a data-loader worker. Each sample is timed in several
passes, the two kinds back to back, and its best time kept (as timeit does); that holds up better on
a shared machine, but all figures remain approximate.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ffnlib import sampling
from ffnlib.bench.clips import write_ssv1_like, write_ssv2_like
from ffnlib.bench.timing import best_of, lap
from ffnlib.datasets import MultiFrameClips, SSv2, VideoClips, decode_sample
from ffnlib.frames import decode_jpeg, open_frame_folder
from ffnlib.layouts import SSv1
from ffnlib.transforms import to_clips
from ffnlib.video import decode_video

log = logging.getLogger(__name__)

GOAL_RATIO = 1.10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None,
                        help="folder for the clips (reused if it already holds them); default: a temporary folder")
    parser.add_argument("--num-videos", type=int, default=8, help="clips to write and read (default 8)")
    parser.add_argument("--num-video-frames", type=int, default=48, help="frames per clip (default 48)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=427)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--crf", type=int, default=30,
                        help="VP9 quality, lower is larger files (default 30: about 85 KB per default clip, "
                             "near SSv2's average of about 88 KB, 19.4 GB for 220,847 videos)")
    parser.add_argument("--jpeg-quality", type=int, default=95,
                        help="quality of the JPEG frames (default 95, about TSM's ffmpeg -q:v 1 extraction)")
    parser.add_argument("--num-frames", type=int, default=16, help="T of the single-clip sample (default 16)")
    parser.add_argument("--frame-counts", type=str, default="4,8,16", help="T of the multi-frame sample")
    parser.add_argument("--frame-size", type=int, default=224)
    parser.add_argument("--resize-size", type=int, default=256)
    parser.add_argument("--mode", choices=["train", "test"], default="train",
                        help="train: random segments and multi-scale crop; test: centres, centre crop")
    parser.add_argument("--passes", type=int, default=8, help="timed passes over the clips (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in a loader worker)")
    parser.add_argument("--seed", type=int, default=0)


# ---- the clips ----

def make_clips(folder: Path, args) -> Path:
    """Write the clips and SSv2-layout annotations into `folder` (kept if already there); return it."""
    return write_ssv2_like(folder, args.num_videos, num_video_frames=args.num_video_frames, height=args.height,
                           width=args.width, fps=args.fps, crf=args.crf, seed=args.seed)


# ---- timing ----

def _time_samples(views: dict, passes: int, clock: str = "wall") -> dict[str, float]:
    """Seconds per sample for each view: each sample's best time over `passes` passes, averaged; by
    the wall clock, or by this process's CPU time (`clock="cpu"`: what the sample costs a loader
    worker, which on a shared machine does not count the waits for a core).

    The views read the same sample back to back, and the best of several tries per sample drops the
    tries that another process interrupted, so the figures hold up on a shared machine.
    """
    for view in views.values():  # warm-up: imports, allocator, file cache
        view[0]
    num_samples = len(next(iter(views.values())))

    def both(i: int) -> list[float]:
        laps = [lap(lambda: view[i]) for view in views.values()]
        return [t.wall for t in laps] + [t.cpu for t in laps]

    best = best_of(both, num_samples, passes).mean(axis=0)  # (2 x views,): wall times, then CPU times
    return {"wall": dict(zip(views, best[: len(views)].tolist())),
            "cpu": dict(zip(views, best[len(views):].tolist()))}


STEPS = ("decode", "draw indices + crop", "RGB conversion + crop", "resize (uint8)", "gather clips (uint8)")


def _stage_times(view, passes: int) -> dict[str, float]:
    """Seconds per sample in each step of a sample, each timed on its own (best of `passes` per
    sample and step). The steps are those of `ffnlib.datasets._ClipView.load`: keep them in step."""

    def stages(index: int) -> list[float]:
        t0 = time.perf_counter()
        video = decode_sample(view.source, index)
        t1 = time.perf_counter()
        plan = view.draw(index, video)
        frame_idx, positions = sampling.union(plan.frame_idx)
        t2 = time.perf_counter()
        frames = torch.from_numpy(video.rgb(frame_idx, plan.crop)).permute(0, 3, 1, 2)  # (U, 3, h, w)
        t3 = time.perf_counter()
        resized = view.transform.spatial_cropped(frames)  # (U, 3, S, S) uint8
        t4 = time.perf_counter()
        to_clips(resized, positions)  # [(3, T_i, S, S) uint8]
        t5 = time.perf_counter()
        return np.diff([t0, t1, t2, t3, t4, t5]).tolist()

    return dict(zip(STEPS, best_of(stages, len(view), passes).mean(axis=0).tolist()))


def _decode_fps(source, passes: int) -> float:
    """Frames decoded per second (no RGB conversion), each video's best of `passes` decodes."""
    paths = [source.video_path(video_id) for video_id, _ in source.samples]
    num_frames = [decode_video(path).num_frames for path in paths]
    best = best_of(lambda i: lap(lambda: decode_video(paths[i])).wall, len(paths), passes)
    return float(sum(num_frames) / best.sum())


def _jpeg_fps(source, passes: int) -> dict[str, float]:
    """Frames decoded to RGB per second from the JPEG frame folders of `source`, by simplejpeg (what
    ffnlib uses) and by Pillow: each folder's best of `passes` full decodes."""
    from PIL import Image

    def pillow(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    files = [open_frame_folder(source.media_path(i), source.frame_template).files for i in range(len(source))]
    result = {}
    def folder_seconds(decode, folder) -> float:
        def decode_all():
            for path in folder:
                decode(path)
        return lap(decode_all).wall

    for name, decode in (("simplejpeg", decode_jpeg), ("Pillow", pillow)):
        best = best_of(lambda i: folder_seconds(decode, files[i]), len(files), passes)
        result[name] = float(sum(len(f) for f in files) / best.sum())
    return result


def _bytes_per_sample(view) -> int:
    """Bytes of one collated sample's clips, as the loader ships them: uint8 (C, T_i, S, S) per clip."""
    clips = view[0][:-1]
    return sum(clip.numel() * clip.element_size() for clip in clips)


def _distinct_frames(view, passes: int) -> float:
    """Mean number of distinct frames converted per sample (the union of the index sets)."""
    counts = []
    for epoch in range(passes):
        view.set_epoch(epoch)
        for index in range(len(view)):
            video = decode_sample(view.source, index)
            counts.append(len(sampling.union(view.draw(index, video).frame_idx)[0]))
    view.set_epoch(0)
    return float(np.mean(counts))


def run(args) -> None:
    torch.set_num_threads(args.threads)
    frame_counts = tuple(int(t) for t in args.frame_counts.split(","))
    with tempfile.TemporaryDirectory(prefix="ffn-bench-data-") as tmp:
        root = make_clips(args.dir or Path(tmp), args)
        source = SSv2(root, "train")
        train = args.mode == "train"
        size = dict(train=train, frame_size=args.frame_size, resize_size=args.resize_size, seed=args.seed)
        single_name = f"{args.num_frames}F"
        multi_name = "+".join(str(t) for t in frame_counts) + "F"
        views = {single_name: VideoClips(source, num_frames=args.num_frames, **size),
                 multi_name: MultiFrameClips(source, frame_counts=frame_counts, **size)}

        decode_fps = _decode_fps(source, args.passes)
        timed = _time_samples(views, args.passes)
        per_sample, cpu_per_sample = timed["wall"], timed["cpu"]
        stages = {name: _stage_times(view, args.passes) for name, view in views.items()}
        distinct = {name: _distinct_frames(view, 2) for name, view in views.items()}
        sample_bytes = {name: _bytes_per_sample(view) for name, view in views.items()}

        frames_root = write_ssv1_like((args.dir or Path(tmp)) / "ssv1", args.num_videos,
                                      num_video_frames=args.num_video_frames, height=args.height, width=args.width,
                                      quality=args.jpeg_quality, seed=args.seed)
        frame_source = SSv1(frames_root, "train")
        jpeg_fps = _jpeg_fps(frame_source, args.passes)
        jpeg_views = {f"jpeg {name}": type(view)(frame_source, **({"num_frames": args.num_frames} if name == single_name
                                                                   else {"frame_counts": frame_counts}), **size)
                      for name, view in views.items()}
        jpeg_per_sample = _time_samples(jpeg_views, args.passes)["wall"]

    ratio = per_sample[multi_name] / per_sample[single_name]
    cpu_ratio = cpu_per_sample[multi_name] / cpu_per_sample[single_name]
    print(f"\nData benchmark: {len(source)} clips {args.width}x{args.height}, {args.num_video_frames} frames, "
          f"VP9 crf {args.crf}; {args.mode} mode, frame_size {args.frame_size}, resize_size {args.resize_size}; "
          f"{args.threads} torch thread(s); each sample's best of {args.passes} passes")
    print(f"decode only (all frames, no RGB): {decode_fps:8.0f} frames/s")
    print(f"JPEG frames (quality {args.jpeg_quality}), decoded to RGB: "
          + ", ".join(f"{name} {fps:.0f} frames/s" for name, fps in jpeg_fps.items())
          + f" (simplejpeg / Pillow {jpeg_fps['simplejpeg'] / jpeg_fps['Pillow']:.2f})")
    header = f"{'sample':>12} {'ms/sample':>10} {'cpu ms':>7} {'samples/s':>10} {'decoded frames/s':>17} " \
             f"{'clip frames/s':>14} {'frames converted':>17}"
    print(header)
    for name in views:
        seconds = per_sample[name]
        clip_frames = args.num_frames if name == single_name else sum(frame_counts)
        print(f"{name:>12} {1000 * seconds:10.1f} {1000 * cpu_per_sample[name]:7.1f} {1 / seconds:10.1f} "
              f"{args.num_video_frames / seconds:17.0f} {clip_frames / seconds:14.0f} {distinct[name]:17.1f}")
    print("bytes a sample ships through the loader: "
          + ", ".join(f"{name} {size / 2**20:.2f} MiB" for name, size in sample_bytes.items())
          + " (uint8 clips; as float32 clips: " + ", ".join(f"{4 * size / 2**20:.2f}" for size in sample_bytes.values())
          + " MiB)")
    print("\nthe same samples from JPEG frame folders (SSv1 layout; only the sampled frames are decoded):")
    print(f"{'sample':>12} {'ms/sample':>10} {'samples/s':>10}")
    for name, seconds in jpeg_per_sample.items():
        print(f"{name:>12} {1000 * seconds:10.1f} {1 / seconds:10.1f}")
    print("\nwhere the time goes (ms/sample, each step timed on its own):")
    print(f"{'step':>26} " + " ".join(f"{name:>12}" for name in views))
    for step in stages[single_name]:
        print(f"{step:>26} " + " ".join(f"{1000 * stages[name][step]:12.2f}" for name in views))
    verdict = "MET" if ratio <= GOAL_RATIO else "NOT MET"
    print(f"\ncost ratio {multi_name} / {single_name}: {ratio:.3f} (by CPU time: {cpu_ratio:.3f})")
    print(f"goal: a {multi_name} sample costs at most {GOAL_RATIO:.2f}x a {single_name} sample: {verdict}")

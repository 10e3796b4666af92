"""SSv2-like clips for the benchmarks: 427x240 lossy VP9 at 12 fps, about 48 frames, in the SSv2 layout.

Each clip is a smooth textured scene seen by a slowly panning camera, with a moving blob and sensor
noise: at crf 30 about 85 KB a clip, near SSv2's average (19.4 GB for 220,847 videos), so decoding
costs what it costs on the real data. Clip `i` is drawn from `np.random.default_rng([seed, i])`:
a folder can be filled in parallel, and clips already there are kept (a later run with more clips
only writes the missing ones).

    write_ssv2_like(folder, num_videos=3000, num_classes=174, workers=16)

writes `<id>.webm` (ids 100000, 100001, ...) and the labels, train and validation JSON files (both
splits list every clip; clip i has class i % num_classes).

    write_ssv1_like(folder, num_videos=8)

writes the very same clips (the same frames before encoding) in the Something-Something V1 layout:
JPEG frame folders `20bn-something-something-v1/<id>/00001.jpg ...` and the CSV annotations.
"""
from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ffnlib.frames import JPEG_QUALITY, write_frames
from ffnlib.layouts import ssv1, ssv2
from ffnlib.video import write_video

log = logging.getLogger(__name__)

CLASS_NAME = "Moving something across the view"
FIRST_ID = 100000


def ssv2_like_frames(rng: np.random.Generator, num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth textured scene seen by a slowly panning camera, a moving blob, noise."""
    pan = 2 * num_frames
    coarse = torch.from_numpy(rng.random((1, 3, height // 12 + 2, (width + pan) // 12 + 2), dtype=np.float32))
    fine = torch.from_numpy(rng.random((1, 3, height // 3, (width + pan) // 3), dtype=np.float32))
    scene = (0.75 * F.interpolate(coarse, size=(height, width + pan), mode="bicubic", align_corners=False)
             + 0.25 * F.interpolate(fine, size=(height, width + pan), mode="bilinear", align_corners=False))
    scene = (scene[0].permute(1, 2, 0).numpy() * 220 + 15).clip(0, 255)  # (H, W + pan, 3) float32
    rows, cols = np.mgrid[0:height, 0:width]
    colour = rng.uniform(0, 255, size=3)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frame = scene[:, 2 * t : 2 * t + width].copy()  # the camera pans 2 px per frame
        cy, cx = height * (0.3 + 0.4 * t / num_frames), width * (0.2 + 0.6 * t / num_frames)
        blob = ((rows - cy) / (height / 6)) ** 2 + ((cols - cx) / (width / 10)) ** 2 < 1  # (H, W)
        frame[blob] = colour
        frame += 2.0 * rng.standard_normal(frame.shape, dtype=np.float32)  # float32: 1.5x faster than normal()
        frames[t] = frame.clip(0, 255).astype(np.uint8)
    return frames


def class_names(num_classes: int) -> list[str]:
    """Class texts: the one SSv2 class name, or that name numbered when there are several."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    return [CLASS_NAME] if num_classes == 1 else [f"{CLASS_NAME} ({k})" for k in range(num_classes)]


def _write_one(job: tuple) -> bool:
    """Write clip `index` unless its file exists; True when it was written now."""
    path, index, seed, num_video_frames, height, width, fps, crf = job
    path = Path(path)
    if path.exists():
        return False
    torch.set_num_threads(1)
    frames = ssv2_like_frames(np.random.default_rng([seed, index]), num_video_frames, height, width)
    if path.suffix == ".webm":
        write_video(path, frames, fps=fps, crf=crf)
    else:  # a frame folder; `crf` is the JPEG quality here
        write_frames(path, frames, ssv1.FRAME_TEMPLATE, quality=crf)
    return True


def _write_missing(jobs: list[tuple], workers: int) -> int:
    missing = [job for job in jobs if not Path(job[0]).exists()]
    if workers > 1 and len(missing) > workers:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            return sum(pool.map(_write_one, missing, chunksize=max(1, len(missing) // (8 * workers))))
    return sum(_write_one(job) for job in missing)


FPS = 12  # SSv2's frame rate
CRF = 30  # VP9 quality: about SSv2's bytes per clip


def write_ssv2_like(folder: str | Path, num_videos: int, *, num_video_frames: int = 48, height: int = 240,
                    width: int = 427, fps: int = FPS, crf: int = CRF, num_classes: int = 1, seed: int = 0,
                    workers: int = 1) -> Path:
    """Write `num_videos` SSv2-like clips and SSv2-layout annotations into `folder`; return it.

    Clips already in the folder are kept. `workers` > 1 writes clips in that many processes
    (spawned, so that a parent's torch threads never meet a fork). crf 30 gives about 85 KB per
    default clip. The annotation files are rewritten to list exactly these `num_videos` clips.
    """
    if num_videos < 1:
        raise ValueError(f"num_videos must be positive, got {num_videos}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"{FIRST_ID + i}" for i in range(num_videos)]
    jobs = [(str(folder / f"{video_id}.webm"), i, seed, num_video_frames, height, width, fps, crf)
            for i, video_id in enumerate(ids)]
    written = _write_missing(jobs, workers)

    names = class_names(num_classes)
    templates = [name.replace("something", "[something]", 1) for name in names]
    entries = [{"id": video_id, "label": names[i % num_classes].replace("something", "a thing", 1),
                "template": templates[i % num_classes], "placeholders": ["a thing"]}
               for i, video_id in enumerate(ids)]
    ssv2.write_annotations(folder, templates, {"train": entries, "validation": entries})
    size_kb = np.mean([(folder / f"{i}.webm").stat().st_size for i in ids]) / 1024
    log.info("%s: %d clips (%d written now), %dx%d, %d frames at %d fps, %.0f KiB each on average",
             folder, len(ids), written, width, height, num_video_frames, fps, size_kb)
    return folder


def write_ssv1_like(folder: str | Path, num_videos: int, *, num_video_frames: int = 48, height: int = 240,
                    width: int = 427, quality: int = JPEG_QUALITY, seed: int = 0, workers: int = 1) -> Path:
    """The clips of `write_ssv2_like` (same seed, same frames before encoding) as SSv1-layout JPEG
    frame folders with CSV annotations (one class; both splits list every clip); return `folder`."""
    if num_videos < 1:
        raise ValueError(f"num_videos must be positive, got {num_videos}")
    folder = Path(folder)
    ids = [f"{FIRST_ID + i}" for i in range(num_videos)]
    (folder / ssv1.FRAMES_DIR).mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / ssv1.FRAMES_DIR / video_id), i, seed, num_video_frames, height, width, 0, quality)
            for i, video_id in enumerate(ids)]
    written = _write_missing(jobs, workers)
    samples = [(video_id, 0) for video_id in ids]
    ssv1.write_annotations(folder, [CLASS_NAME], {"train": samples, "validation": samples})
    log.info("%s: %d frame folders (%d written now), %dx%d, %d JPEG frames each at quality %d",
             folder, len(ids), written, width, height, num_video_frames, quality)
    return folder

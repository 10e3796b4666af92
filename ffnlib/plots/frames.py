"""Video frames in figures: enlarged by whole pixels (the built-in frames are 28-32 px, their dots one
or two), and laid out along a video's time axis for the explorer of notebook 08."""
from __future__ import annotations

import math

import numpy as np

FRAME_PX = 96  # frames are enlarged to at least this many pixels a side, by a whole factor
STRIP_SLOTS = 8  # places on one line of a time strip


def upscale(frames: np.ndarray, min_side: int = FRAME_PX) -> np.ndarray:
    """`frames` (..., H, W, C) enlarged by the whole factor ceil(min_side / min(H, W)) (1 when they are
    that large already), every pixel repeated: nearest neighbour, so a one-pixel dot stays a crisp square."""
    height, width = frames.shape[-3:-1]
    factor = max(1, math.ceil(min_side / min(height, width)))
    if factor == 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)  # (..., H*f, W*f, C)


def time_strip(frames: np.ndarray, slots: int = STRIP_SLOTS) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """`frames` (T, S, S, 3) uint8 on a white canvas, each line of frames under a white band for labels.

    T <= `slots`: one line of `slots` places, frame k in the place where its segment centre
    (k + 1/2) / T falls along the video. T > `slots`: ceil(T / slots) lines of `slots` frames, in order.
    Returns the canvas (H, W, 3) and, per frame, where its label goes: (x, y) in canvas pixels, the
    middle of the band above it.
    """
    t, size = frames.shape[0], frames.shape[1]
    gap, band = max(1, size // 8), max(8, size // 3)
    lines = math.ceil(t / slots)
    canvas = np.full((lines * (band + size), slots * (size + gap) - gap, 3), 255, dtype=np.uint8)  # (H, W, 3)
    anchors = []
    for k in range(t):
        line, place = (0, min(slots - 1, int((k + 0.5) * slots / t))) if t <= slots else divmod(k, slots)
        x0, y0 = place * (size + gap), line * (band + size) + band
        canvas[y0:y0 + size, x0:x0 + size] = frames[k]
        anchors.append((x0 + (size - 1) / 2, y0 - band / 2))
    return canvas, anchors

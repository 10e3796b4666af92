"""TSN segment sampling: which frames of a video make a clip of T frames.

A video of N frames (`num_video_frames`) is split into T (`num_frames`) equal segments and one frame
is taken from each, so a clip always spans the whole video. Indices are 0-based, int64, sorted, and
lie in [0, N).

Train (the official TSM `_sample_indices`): segments of `N // T` frames each, one frame drawn
uniformly in each from the generator passed in:

    frame_idx[k] = k * (N // T) + randint(N // T)

so the last `N % T` frames are never drawn (as in the official code).

Test (the official TSM `_get_val_indices`): the centre frame of each of T segments of length N / T:

    frame_idx[k] = floor(N / T * (k + 1/2)) = (N * (2k + 1)) // (2T)

computed with integers, so no floating-point rounding can move an index.

Short videos (N < T): each segment is shorter than a frame, so frames must repeat. Train has nothing
left to draw and takes the test indices: the frame under each segment centre. Every frame of the
video is then used, in order, each about T / N times (N=3, T=8: 0 0 0 1 1 2 2 2). The official code
instead returns frame 0 T times (in test also when N == T); that clip shows no motion at all, so we do
not copy it. N == T gives 0, 1, ..., T-1 in both modes.

An FFN sample needs clips at several frame counts (`frame_counts`, default (4, 8, 16)); their index
sets are drawn **independently** from one generator, one after the other, not nested in each other.
`union` merges them so that each distinct frame is converted to RGB once.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

FRAME_COUNTS = (4, 8, 16)


def _check_sizes(num_video_frames: int, num_frames: int) -> None:
    if int(num_video_frames) < 1:
        raise ValueError(f"cannot sample from a video with {num_video_frames} frames (need at least 1)")
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")


def train_indices(num_video_frames: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """One frame drawn from `rng` in each of `num_frames` segments: (num_frames,) int64, sorted."""
    _check_sizes(num_video_frames, num_frames)
    segment = num_video_frames // num_frames
    if segment == 0:  # N < T: nothing to draw, repeat frames as in test mode
        return centre_indices(num_video_frames, num_frames)
    starts = np.arange(num_frames, dtype=np.int64) * segment
    return starts + rng.integers(segment, size=num_frames, dtype=np.int64)


def centre_indices(num_video_frames: int, num_frames: int) -> np.ndarray:
    """The centre frame of each of `num_frames` segments: (num_frames,) int64, sorted, deterministic.

    Also right for N < T, where it repeats frames: every frame is the centre of some segment.
    """
    _check_sizes(num_video_frames, num_frames)
    k = np.arange(num_frames, dtype=np.int64)
    return (num_video_frames * (2 * k + 1)) // (2 * num_frames)


def segment_indices(
    num_video_frames: int, num_frames: int, *, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """`train_indices` (needs `rng`) or `centre_indices` (ignores it): (num_frames,) int64."""
    if not train:
        return centre_indices(num_video_frames, num_frames)
    if rng is None:
        raise ValueError("train sampling needs an explicit numpy Generator (rng=...)")
    return train_indices(num_video_frames, num_frames, rng)


def multi_segment_indices(
    num_video_frames: int,
    frame_counts: Sequence[int] = FRAME_COUNTS,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
) -> list[np.ndarray]:
    """One independent index set per entry of `frame_counts`, in that order: [(T_i,) int64, ...].

    In train mode the sets are drawn one after the other from `rng`, so none is a subset of another
    except by chance. In test mode each is the deterministic set of segment centres.
    """
    if len(frame_counts) == 0:
        raise ValueError("frame_counts is empty: give at least one frame count, e.g. (4, 8, 16)")
    return [segment_indices(num_video_frames, t, train=train, rng=rng) for t in frame_counts]


def union(index_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct frames of several index sets, and where each set's frames sit among them.

    Returns `(frame_idx, positions)`: `frame_idx` is (U,) int64, sorted and without repeats;
    `positions[i]` is (len(index_sets[i]),) int64 with `frame_idx[positions[i]] == index_sets[i]`.
    """
    sizes = [len(s) for s in index_sets]
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in index_sets])  # (sum T_i,)
    frame_idx, inverse = np.unique(flat, return_inverse=True)  # (U,), (sum T_i,)
    inverse = inverse.reshape(-1).astype(np.int64)
    return frame_idx.astype(np.int64), list(np.split(inverse, np.cumsum(sizes)[:-1]))

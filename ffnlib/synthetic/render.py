"""The built-in dataset's classes and clips: a cloud of dots whose motion is the class (see ffnlib.synthetic).

`render_clip(label, rng, design)` draws one clip as a (T, H, W, 3) uint8 RGB array; `make_clip(split,
index, seed, design)` the very clip (and label) that `prepare` writes for that split and index.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np

# Bump when the pixels produced for given knobs and seed change: it is part of the cache folder name
# and of the manifest, so a cached dataset from older code is never taken for the current one.
GENERATOR_VERSION = 2

FPS = 12
SPLITS = ("train", "validation", "test")
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}


# --------------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MotionClass:
    """One class: an SSv2-style template (placeholder in brackets) and the motion that realises it.

    `kind`:
      "translate": every dot moves along `direction` ((dy, dx), unit length, image axes: y down);
      "radial":    dots move away from (`sign` +1) or towards (-1) a centre, each reborn at the other
                   end of its path when it leaves the disc of radius `disc` * video_size around it;
      "rotate":    the dots of a disc turn about its centre, clockwise on screen (`sign` +1) or
                   counterclockwise (-1).
    `speed` multiplies the video's `travel` (2: the dots cover twice the distance in the same time).
    `profile` says when the dots move, always at the same speed while they do (a fraction of the
    video's length in normalised time, see `_progress`):
      "linear":   all the time;
      "return":   out for the first half, back to the start for the second;
      "go_stop":  the first half, then they stand still;
      "stop_go":  still for the first half, then they move.
    Every pair of opposite classes is the same set of frames played in the other order, so no
    single frame tells them apart.
    """

    template: str
    kind: str
    direction: tuple[float, float] = (0.0, 0.0)
    sign: int = 1
    speed: float = 1.0
    profile: str = "linear"

    @property
    def text(self) -> str:
        """The class text as the SSv2 labels file spells it: the template without brackets."""
        return self.template.replace("[", "").replace("]", "")


_D = 1.0 / np.sqrt(2.0)
# Ordered so that the first 4 are the axis directions, the first 8 add the diagonals, then come
# the pairs of radial and rotating motions; `num_classes` takes the first classes of this list.
CATALOGUE: tuple[MotionClass, ...] = (
    MotionClass("Moving [something] to the left", "translate", (0.0, -1.0)),
    MotionClass("Moving [something] to the right", "translate", (0.0, 1.0)),
    MotionClass("Moving [something] up", "translate", (-1.0, 0.0)),
    MotionClass("Moving [something] down", "translate", (1.0, 0.0)),
    MotionClass("Moving [something] up and to the left", "translate", (-_D, -_D)),
    MotionClass("Moving [something] up and to the right", "translate", (-_D, _D)),
    MotionClass("Moving [something] down and to the left", "translate", (_D, -_D)),
    MotionClass("Moving [something] down and to the right", "translate", (_D, _D)),
    MotionClass("Moving [something] away from each other", "radial", sign=1),
    MotionClass("Moving [something] closer to each other", "radial", sign=-1),
    MotionClass("Turning [something] clockwise", "rotate", sign=1),
    MotionClass("Turning [something] counterclockwise", "rotate", sign=-1),
    # Appended for the study profile (docs/built-in-study.md); the demo takes the first 8 above.
    # The same 8 directions at twice the speed:
    *(MotionClass(f"Moving [something] quickly {where}", "translate", d, speed=2.0) for where, d in (
        ("to the left", (0.0, -1.0)), ("to the right", (0.0, 1.0)), ("up", (-1.0, 0.0)), ("down", (1.0, 0.0)),
        ("up and to the left", (-_D, -_D)), ("up and to the right", (-_D, _D)),
        ("down and to the left", (_D, -_D)), ("down and to the right", (_D, _D)))),
    # The 4 axis directions with a temporal structure at the scale of half a video:
    *(MotionClass(text.format(where=where), "translate", d, profile=profile)
      for profile, text in (("return", "Moving [something] {where} and back"),
                            ("go_stop", "Moving [something] {where}, then stopping"),
                            ("stop_go", "Pausing, then moving [something] {where}"))
      for where, d in (("to the left", (0.0, -1.0)), ("to the right", (0.0, 1.0)), ("up", (-1.0, 0.0)),
                       ("down", (1.0, 0.0)))),
)
PROFILES = ("linear", "return", "go_stop", "stop_go")


# --------------------------------------------------------------------------------------------------
# Knobs
# --------------------------------------------------------------------------------------------------
# Design knobs added after the demo's data was fixed (see Design.knobs).
NEW_KNOBS = ("class_ids", "active", "lifetime")


@dataclass(frozen=True)
class Design:
    """Every knob of the built-in dataset; the defaults are the demo's values.

    Sizes are in pixels of the written video; ranges are (low, high), drawn uniformly per video
    (integers inclusive). `video_size` is the side of the square video; the network's input side
    (`frame_size` elsewhere in the workbook) is what the crop is resized to.
    """

    num_classes: int = 8
    num_train: int = 6000  # 2000 were memorised (vanilla 16F 70% on validation); see docs/built-in-study.md
    num_val: int = 1000
    num_test: int = 0
    video_size: int = 32
    min_frames: int = 32  # frames per video (num_video_frames), drawn in [min_frames, max_frames]
    max_frames: int = 40  # (>= 32 keeps 2+ frames per 16F training segment)
    num_dots: tuple[int, int] = (5, 8)  # dots that carry the class motion
    dot_sigma: tuple[float, float] = (1.4, 1.8)  # Gaussian radius of a dot
    travel: tuple[float, float] = (14.0, 18.0)  # distance every dot travels over the whole video
    num_distractors: tuple[int, int] = (0, 2)  # extra dots, each moving its own random way
    disc: float = 0.45  # radial and rotating clouds live in a disc of radius disc * video_size
    colour: str = "random"  # "white", or "random": one random bright hue per video
    background: str = "black"  # "black", or "random": one random dark flat colour per video
    # Knobs added after the demo: at their defaults they draw nothing from the generator and are left
    # out of knobs() (NEW_KNOBS), so the demo's pixels, folder name and manifest stay what they were.
    class_ids: tuple[int, ...] = ()  # CATALOGUE indices of the classes in label order; () = the first num_classes
    active: tuple[float, float] = (1.0, 1.0)  # fraction of the video the class motion lasts, placed at random
    # Frames a class dot lives before it is reborn at a random place (drawn per dot, random phase); (0, 0):
    # for ever. Meant for translations: a dot then carries the motion across a gap of g frames with
    # probability 1 - g / life, so clips with fewer frames (longer gaps) see less of it.
    lifetime: tuple[int, int] = (0, 0)

    def __post_init__(self):
        def fail(msg):
            raise ValueError(f"built-in dataset knobs: {msg}")

        if not 1 <= self.num_classes <= len(CATALOGUE):
            fail(f"num_classes must be in 1..{len(CATALOGUE)}, got {self.num_classes}")
        if self.class_ids:
            ids = self.class_ids
            if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(CATALOGUE) for i in ids):
                fail(f"class_ids must be CATALOGUE indices in 0..{len(CATALOGUE) - 1}, got {list(ids)}")
            if len(set(ids)) != len(ids):
                fail(f"class_ids must be distinct, got {list(ids)}")
            if len(ids) != self.num_classes:
                fail(f"num_classes ({self.num_classes}) must equal the number of class_ids ({len(ids)})")
        lo, hi = self.active
        if not 0.1 <= lo <= hi <= 1.0:
            fail(f"active must be a range (low, high) with 0.1 <= low <= high <= 1, got {(lo, hi)}")
        lo, hi = self.lifetime
        if not (lo == hi == 0 or 1 <= lo <= hi):
            fail(f"lifetime must be (0, 0) (dots live for ever) or a range with 1 <= low <= high, got {(lo, hi)}")
        if self.num_train < 0 or self.num_val < 0 or self.num_test < 0:
            fail("num_train, num_val and num_test must be >= 0")
        if self.video_size < 8 or self.video_size % 2:
            fail(f"video_size must be even and >= 8, got {self.video_size}")
        if not 2 <= self.min_frames <= self.max_frames:
            fail(f"need 2 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        for name in ("num_dots", "dot_sigma", "travel", "num_distractors"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                fail(f"{name} must be a range (low, high) with 0 <= low <= high, got {(lo, hi)}")
        if self.num_dots[0] < 1:
            fail("num_dots must be at least 1")
        if not 0.1 <= self.disc <= 0.5:
            fail(f"disc must be in [0.1, 0.5] (a fraction of video_size), got {self.disc}")
        if self.colour not in ("white", "random"):
            fail(f"colour must be 'white' or 'random', got {self.colour!r}")
        if self.background not in ("black", "random"):
            fail(f"background must be 'black' or 'random', got {self.background!r}")

    @classmethod
    def from_knobs(cls, **knobs) -> "Design":
        """A Design from keyword knobs; unknown names are refused, lists become tuples."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(knobs) - names)
        if unknown:
            raise TypeError(f"unknown built-in dataset knob(s) {unknown}; known: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()})

    def knobs(self) -> dict:
        """The knobs as plain JSON types (a knob of NEW_KNOBS only when it is not at its default)."""
        default = {f.name: f.default for f in dataclasses.fields(self) if f.name in NEW_KNOBS}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if k not in default or v != default[k]}

    @property
    def classes(self) -> tuple[MotionClass, ...]:
        if self.class_ids:
            return tuple(CATALOGUE[i] for i in self.class_ids)
        return CATALOGUE[: self.num_classes]

    def num_videos(self, split: str) -> int:
        return {"train": self.num_train, "validation": self.num_val, "test": self.num_test}[split]


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _render_dots(pos: np.ndarray, sigma: np.ndarray, colour: np.ndarray, background: np.ndarray,
                 size: int) -> np.ndarray:
    """Gaussian dots at `pos` (T, D, 2) as (y, x) pixels, wrapped around the edges: (T, size, size, 3) uint8.

    `sigma` (D,) radii, `colour` (3,) in [0, 1] (all dots alike), `background` (3,) in [0, 1]. Overlapping
    dots add up to at most full colour; the result is quantised, so the far tails of each dot are
    exactly background.
    """
    grid = np.arange(size, dtype=np.float64)
    # Wrap-aware distance from every pixel row/column to every dot: a dot crossing an edge is drawn on
    # both sides.
    d = (grid[None, None, :] - np.mod(pos[..., None], size) + size / 2) % size - size / 2  # (T, D, 2, size)
    g = np.exp(-0.5 * (d / sigma[None, :, None, None]) ** 2)  # (T, D, 2, size)
    intensity = np.minimum(np.einsum("tdh,tdw->thw", g[:, :, 0], g[:, :, 1]), 1.0)  # (T, H, W)
    frames = background + intensity[..., None] * (colour - background)  # (T, H, W, 3)
    return np.rint(frames * 255.0).astype(np.uint8)


def render_clip(label: int, rng: np.random.Generator, design: Design | None = None,
                num_video_frames: int | None = None) -> np.ndarray:
    """Render one clip of class `label`: (T, H, W, 3) uint8 RGB with H = W = design.video_size.

    All nuisance variation (number of dots, their size, colour and start positions, speed, and the
    video length T unless `num_video_frames` is given) is drawn from `rng`, so the same generator
    state gives the same pixels.
    """
    design = design or Design()
    if not 0 <= label < design.num_classes:
        raise ValueError(f"label {label} out of range for {design.num_classes} classes")
    cls = design.classes[label]
    size = design.video_size
    if num_video_frames is None:
        num_video_frames = int(rng.integers(design.min_frames, design.max_frames + 1))
    num_dots = int(rng.integers(design.num_dots[0], design.num_dots[1] + 1))
    sigma = rng.uniform(*design.dot_sigma, size=num_dots)
    travel = rng.uniform(*design.travel)
    if design.colour == "random":
        colour = _hsv_to_rgb(rng.uniform(), rng.uniform(0.5, 1.0), 1.0)
    else:
        colour = np.ones(3)
    if design.background == "random":
        background = rng.uniform(0.0, 0.25, size=3)
    else:
        background = np.zeros(3)

    t = np.linspace(0.0, 1.0, num_video_frames)  # (T,) normalised time
    t_class, span = t, 1.0
    if design.active != (1.0, 1.0):  # the class motion lasts `span` of the video, at a random place
        span = rng.uniform(*design.active)
        start = rng.uniform(0.0, 1.0 - span)
        t_class = np.clip((t - start) / span, 0.0, 1.0) * span  # (T,) in [0, span], still before and after
    progress = _progress(cls.profile, t_class, span)  # (T,) distance covered, in video lengths
    pos = _motion(cls, progress, travel * cls.speed, num_dots, size, design.disc, rng)  # (T, D, 2)
    if design.lifetime != (0, 0):
        pos = pos + _rebirths(num_video_frames, num_dots, design.lifetime, size, rng)  # (T, D, 2)
    num_distractors = int(rng.integers(design.num_distractors[0], design.num_distractors[1] + 1))
    if num_distractors:
        angle = rng.uniform(0, 2 * np.pi, size=num_distractors)
        step = rng.uniform(*design.travel, size=(num_distractors, 1)) * np.stack([np.sin(angle), np.cos(angle)], 1)
        start = rng.uniform(0, size, size=(num_distractors, 2))  # (K, 2)
        distract = start[None] + t[:, None, None] * step[None]  # (T, K, 2)
        pos = np.concatenate([pos, distract], axis=1)  # (T, D + K, 2)
        sigma = np.concatenate([sigma, rng.uniform(*design.dot_sigma, size=num_distractors)])
    return _render_dots(pos, sigma, colour, background, size)


def _rebirths(num_video_frames: int, num_dots: int, lifetime: tuple[int, int], size: int,
              rng: np.random.Generator) -> np.ndarray:
    """Offsets (T, D, 2) that move each dot to a new random place every `life` frames (drawn per dot in
    `lifetime`, at a random phase), so a dot carries the class motion for `life` frames at most."""
    life = rng.integers(lifetime[0], lifetime[1] + 1, size=num_dots)  # (D,)
    phase = rng.integers(0, life)  # (D,)
    incarnation = (np.arange(num_video_frames)[:, None] + phase[None]) // life[None]  # (T, D)
    offsets = rng.uniform(0, size, size=(num_dots, int(incarnation.max()) + 1, 2))  # (D, K, 2)
    return offsets[np.arange(num_dots)[None], incarnation]  # (T, D, 2)


def _progress(profile: str, t: np.ndarray, span: float = 1.0) -> np.ndarray:
    """Distance covered by time `t` (T,) in [0, span], in video lengths of constant motion: the class's
    `profile` (see `MotionClass`) at unit speed over a motion lasting `span` of the video."""
    if profile == "linear":
        return t
    half = span / 2
    if profile == "return":
        return half - np.abs(t - half)
    if profile == "go_stop":
        return np.minimum(t, half)
    if profile == "stop_go":
        return np.maximum(t - half, 0.0)
    raise ValueError(f"unknown motion profile {profile!r}; expected one of {PROFILES}")


def _motion(cls: MotionClass, t: np.ndarray, travel: float, num_dots: int, size: int, disc: float,
            rng: np.random.Generator) -> np.ndarray:
    """Dot positions (T, D, 2) as (y, x) pixels (not yet wrapped) after covering `t` (T,) video
    lengths of motion at `travel` pixels per video length."""
    if cls.kind == "translate":
        start = rng.uniform(0, size, size=(num_dots, 2))  # (D, 2)
        step = travel * np.asarray(cls.direction)  # (2,)
        return start[None] + t[:, None, None] * step[None, None]  # (T, D, 2)
    centre = rng.uniform(0, size, size=2)  # (2,)
    radius_max = disc * size
    angle = rng.uniform(0, 2 * np.pi, size=num_dots)  # (D,)
    if cls.kind == "radial":
        # Constant radial speed; a dot leaving the disc (or reaching the centre) is reborn at the
        # other end, so the radii stay uniform over [0, radius_max) in every frame.
        radius = np.mod(rng.uniform(0, radius_max, size=num_dots)[None] + cls.sign * travel * t[:, None],
                        radius_max)  # (T, D)
        angle = np.broadcast_to(angle, radius.shape)
    elif cls.kind == "rotate":
        # Rigid rotation; the angle is chosen so that a dot at mean radius travels `travel` pixels.
        # Radii drawn with density ~ r (uniform over the disc), away from the very centre.
        radius = radius_max * np.sqrt(rng.uniform(0.04, 1.0, size=num_dots))[None]  # (1, D)
        turn = travel / (radius_max * 2 / 3)  # mean radius of a uniform disc
        angle = angle[None] + cls.sign * turn * t[:, None]  # (T, D); y down: +angle is clockwise on screen
    else:
        raise ValueError(f"unknown motion kind {cls.kind!r}")
    return centre + radius[..., None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (T, D, 2)


def _clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODE[split], index, GENERATOR_VERSION])


def split_labels(split: str, seed: int, design: Design) -> np.ndarray:
    """Labels of every video of `split` (int64, balanced over the classes, in shuffled order)."""
    n = design.num_videos(split)
    labels = np.arange(n) % design.num_classes
    return np.random.default_rng([seed, _SPLIT_CODE[split], GENERATOR_VERSION, 7]).permutation(labels)


def make_clip(split: str, index: int, seed: int = 0, design: Design | None = None,
              labels: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The clip `prepare(seed=seed, ...)` writes as video `index` of `split`: ((T, H, W, 3) uint8, label).

    Pass `labels=split_labels(split, seed, design)` when calling this in a loop, to draw them once.
    """
    design = design or Design()
    if labels is None:
        labels = split_labels(split, seed, design)
    label = int(labels[index])
    return render_clip(label, _clip_rng(seed, split, index), design), label


def iter_clips(split: str, seed: int = 0, design: Design | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """Every clip of `split` in order, rendered in memory: ((T, H, W, 3) uint8, label)."""
    design = design or Design()
    labels = split_labels(split, seed, design)
    for i in range(design.num_videos(split)):
        yield make_clip(split, i, seed, design, labels)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
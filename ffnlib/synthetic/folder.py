"""The built-in dataset on disk: `prepare` writes it once, in the SSv2 (or SSv1) layout (see ffnlib.synthetic)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ffnlib import paths
from ffnlib.frames import write_frames
from ffnlib.layouts import ssv1, ssv2
from ffnlib.video import write_video

try:  # POSIX: lock the folder being written; elsewhere concurrent writers are not kept apart
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from .render import FPS, GENERATOR_VERSION, SPLITS, _SPLIT_CODE, Design, make_clip, split_labels

log = logging.getLogger(__name__)

MANIFEST = "builtin-manifest.json"
IN_PROGRESS = ".builtin-in-progress.json"
LAYOUTS = ("ssv2", "ssv1")  # the layouts `prepare` writes


def video_id(split: str, index: int, design: Design) -> str:
    """Numeric string ids as in SSv2: train 1.., then validation, then test."""
    offset = {"train": 0, "validation": design.num_train, "test": design.num_train + design.num_val}[split]
    return str(1 + offset + index)


def dataset_name(seed: int = 0, design: Design | None = None, layout: str = "ssv2") -> str:
    """Short folder name derived from the knobs and the seed, e.g. 'dots8-2000-500-s0-1a2b3c4d' (with
    '-ssv1' at the end for the SSv1 layout)."""
    design = design or Design()
    blob = json.dumps({"knobs": design.knobs(), "seed": seed, "version": GENERATOR_VERSION}, sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
    suffix = "" if layout == "ssv2" else f"-{layout}"
    return f"dots{design.num_classes}-{design.num_train}-{design.num_val}-s{seed}-{digest}{suffix}"


def _annotation(split: str, index: int, label: int, design: Design, rng: np.random.Generator) -> dict:
    vid = video_id(split, index, design)
    if split == "test":
        return {"id": vid}
    cls = design.classes[label]
    # The placeholder names the dots, as SSv2's names the object; it is drawn from its own generator so
    # the pixels do not depend on it.
    thing = str(rng.choice(["dots", "small dots", "a cloud of dots", "some dots", "points"]))
    return {
        "id": vid,
        "label": cls.template.replace("[something]", thing),
        "template": cls.template,
        "placeholders": [thing],
    }


def _write_annotations(root: Path, layout: str, seed: int, design: Design) -> None:
    """The annotation files of `layout`, written by the module that owns it."""
    labels = {split: split_labels(split, seed, design) for split in SPLITS}
    if layout == "ssv2":
        entries = {}
        for split in SPLITS:
            meta_rng = np.random.default_rng([seed, _SPLIT_CODE[split], GENERATOR_VERSION, 11])
            entries[split] = [_annotation(split, i, int(label), design, meta_rng)
                              for i, label in enumerate(labels[split])]
        ssv2.write_annotations(root, [cls.template for cls in design.classes], entries)
    else:
        ssv1.write_annotations(root, [cls.text for cls in design.classes],
                               {split: [(video_id(split, i, design), int(label)) for i, label in enumerate(labels[split])]
                                for split in SPLITS})


def _media_path(root: Path, layout: str, vid: str) -> Path:
    """Where video `vid` goes: `<root>/<id>.webm` (ssv2) or the frame folder `<root>/<frames dir>/<id>` (ssv1)."""
    if layout == "ssv2":
        return root / f"{vid}{ssv2.VIDEO_SUFFIX}"
    return root / ssv1.FRAMES_DIR / vid


def _write_one(job: tuple) -> str:
    root, layout, split, index, seed, design = job
    frames, _ = make_clip(split, index, seed, design)
    path = _media_path(Path(root), layout, video_id(split, index, design))
    if not path.exists():  # a file or folder there was renamed into place whole: keep it
        if layout == "ssv2":
            write_video(path, frames, fps=FPS, lossless=True)
        else:
            write_frames(path, frames, ssv1.FRAME_TEMPLATE)
    return path.name


def is_complete(root: str | Path, seed: int = 0, design: Design | None = None, layout: str = "ssv2") -> bool:
    """True when `root` holds a finished built-in dataset made with these knobs, this seed and layout."""
    design = design or Design()
    manifest = Path(root) / MANIFEST
    if not manifest.exists():
        return False
    try:
        found = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return found == _manifest(seed, design, layout)


def _manifest(seed: int, design: Design, layout: str = "ssv2") -> dict:
    manifest = {
        "generator": "ffnlib.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "knobs": design.knobs(),
        "num_videos": {s: design.num_videos(s) for s in SPLITS},
    }
    if layout != "ssv2":  # the SSv2 manifest stays as it was, so existing caches are still recognised
        manifest["layout"] = layout
    return manifest


@contextlib.contextmanager
def _folder_lock(root: Path):
    """Hold an exclusive lock on `root` (a file `.<name>.lock` beside it) while writing: a second
    process preparing the same folder waits here, then finds the dataset complete."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is writing the built-in dataset at %s; waiting for it", root)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(root: str | Path | None = None, *, seed: int = 0, num_workers: int = 2, progress: bool = True,
            layout: str = "ssv2", **knobs) -> Path:
    """Write the built-in dataset once (SSv2 layout, or SSv1's with `layout="ssv1"`) and return its
    root; re-use it when complete.

    `root` defaults to `paths.data_dir() / "builtin" / dataset_name(seed, design, layout)`. Knobs are
    the fields of `Design` (defaults: the demo's values); unknown knobs are refused. A folder holding a
    complete dataset with the same knobs and seed is returned untouched. A folder left by a killed
    run (its in-progress marker names the same knobs) is finished: the videos already there were
    renamed into place whole and are kept. A folder that holds anything else is refused, never
    overwritten. Another process writing the same folder is waited for. `num_workers` processes render
    and encode (1: in this process); `progress` shows a bar.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"built-in dataset: layout must be one of {LAYOUTS}, got {layout!r}")
    design = Design.from_knobs(**knobs)
    root = Path(root) if root is not None else paths.data_dir() / "builtin" / dataset_name(seed, design, layout)
    if is_complete(root, seed, design, layout):
        log.info("built-in dataset already complete at %s", root)
        return root
    with _folder_lock(root):
        _prepare(root, seed, design, layout, num_workers, progress)
    return root


def _prepare(root: Path, seed: int, design: Design, layout: str, num_workers: int, progress: bool) -> None:
    expected = _manifest(seed, design, layout)
    if is_complete(root, seed, design, layout):  # another process finished it while this one waited
        log.info("built-in dataset already complete at %s", root)
        return
    if (root / MANIFEST).exists():
        raise FileExistsError(
            f"{root}: holds a built-in dataset made with other knobs, seed or layout (see {MANIFEST}); "
            f"expected {expected['knobs']} seed {seed} layout {layout}. Pass another root or remove the folder."
        )
    marker = root / IN_PROGRESS
    if root.exists() and any(root.iterdir()):
        resumable = marker.exists() and _read_json(marker) == expected
        if not resumable:
            raise FileExistsError(
                f"{root}: not empty and not an unfinished built-in dataset with these knobs "
                f"(no matching {IN_PROGRESS}); refusing to write into it"
            )
        log.info("finishing the unfinished built-in dataset at %s", root)
    root.mkdir(parents=True, exist_ok=True)
    _write_json(marker, expected)
    _write_annotations(root, layout, seed, design)
    if layout == "ssv1":
        (root / ssv1.FRAMES_DIR).mkdir(exist_ok=True)
    jobs = [(str(root), layout, split, i, seed, design) for split in SPLITS for i in range(design.num_videos(split))]

    desc = f"built-in dataset ({len(jobs)} videos)"
    if num_workers > 1 and len(jobs) > 1:
        # spawn, not fork: the caller (a notebook kernel) may hold torch threads.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(num_workers, mp_context=ctx) as pool:
            for _ in tqdm(pool.map(_write_one, jobs, chunksize=32), total=len(jobs), desc=desc,
                          disable=not progress):
                pass
    else:
        for job in tqdm(jobs, desc=desc, disable=not progress):
            _write_one(job)

    _write_json(root / MANIFEST, expected)  # last: marks the dataset complete
    marker.unlink()
    log.info("wrote the built-in dataset to %s", root)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_json(path: Path, obj) -> None:
    paths.write_text_atomic(path, json.dumps(obj, indent=1))

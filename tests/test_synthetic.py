import hashlib
import json
import multiprocessing

import numpy as np
import pytest

from ffnlib import synthetic
from ffnlib.layouts import ssv2
from ffnlib.frames import decode_jpeg
from ffnlib.layouts import ssv1
from ffnlib.synthetic import Design, make_clip, prepare, render_clip
from ffnlib.synthetic import render
from ffnlib.video import read_frames

TINY = dict(num_train=6, num_val=4, num_test=2, min_frames=10, max_frames=14, video_size=16)


def test_same_seed_same_pixels_other_seed_other_pixels():
    design = Design.from_knobs(**TINY, num_distractors=(1, 2), colour="random", background="random")
    a, la = make_clip("train", 3, seed=5, design=design)
    b, lb = make_clip("train", 3, seed=5, design=design)
    c, _ = make_clip("train", 3, seed=6, design=design)
    np.testing.assert_array_equal(a, b)
    assert la == lb
    assert a.shape[0] != c.shape[0] or not np.array_equal(a, c)


@pytest.mark.parametrize("num_classes", [1, 4, 8, len(synthetic.CATALOGUE)])
def test_render_layout_and_ranges(num_classes):
    design = Design.from_knobs(**{**TINY, "num_classes": num_classes})
    rng = np.random.default_rng(0)
    for label in range(num_classes):
        clip = render_clip(label, rng, design)
        assert clip.dtype == np.uint8 and clip.ndim == 4 and clip.shape[1:] == (16, 16, 3)
        assert TINY["min_frames"] <= clip.shape[0] <= TINY["max_frames"]
        assert clip.max() > 100  # the dots are visible
    with pytest.raises(ValueError, match="out of range"):
        render_clip(num_classes, rng, design)


def _centroid_shift(clip):
    """Mean displacement (dy, dx) of the bright pixels between consecutive frames, from phase correlation."""
    g = clip[..., 0].astype(float)
    shifts = []
    for a, b in zip(g[:-1], g[1:]):
        r = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
        dy, dx = np.unravel_index(np.argmax(r), r.shape)
        n = g.shape[1]
        shifts.append(((dy + n // 2) % n - n // 2, (dx + n // 2) % n - n // 2))
    return np.mean(shifts, axis=0)


def test_translation_classes_move_the_way_their_name_says():
    # Long videos with fast dots: one pixel or more between frames, so whole-frame phase correlation
    # finds the displacement.
    design = Design.from_knobs(num_classes=8, video_size=32, min_frames=16, max_frames=16, travel=(30.0, 30.0))
    rng = np.random.default_rng(1)
    for label, cls in enumerate(design.classes):
        assert cls.kind == "translate"
        dy, dx = _centroid_shift(render_clip(label, rng, design))
        want_y, want_x = np.sign(cls.direction)
        assert np.sign(np.round(dy)) == want_y and np.sign(np.round(dx)) == want_x, (cls.text, dy, dx)


@pytest.mark.parametrize("kind", ["radial", "rotate"])
def test_radial_and_rotating_classes_move_the_way_their_name_says(kind):
    t = np.linspace(0, 1, 20)
    for cls in [c for c in synthetic.CATALOGUE if c.kind == kind]:
        pos = render._motion(cls, t, 16.0, 8, 32, 0.45, np.random.default_rng(0))  # (T, D, 2)
        centre = np.random.default_rng(0).uniform(0, 32, size=2)  # the first draw of _motion
        rel = pos - centre
        if kind == "radial":
            step = np.diff(np.hypot(rel[..., 0], rel[..., 1]), axis=0)  # (T-1, D)
            step = step[np.abs(step) < 5]  # leave out the rebirths at the other end of the disc
        else:
            angle = np.unwrap(np.arctan2(rel[..., 0], rel[..., 1]), axis=0)  # y down: + is clockwise
            step = np.diff(angle, axis=0)
        assert step.size and np.all(np.sign(step) == cls.sign), cls.text
    assert "clockwise" in synthetic.CATALOGUE[10].text and synthetic.CATALOGUE[10].sign == 1


def test_no_single_frame_tells_the_class():
    # Wrap-around and random starts: the mean image over many clips is the same for every class.
    design = Design.from_knobs(num_classes=4, video_size=16, min_frames=8, max_frames=8)
    rng = np.random.default_rng(2)
    means = [np.mean([render_clip(c, rng, design)[0].mean() for _ in range(200)]) for c in range(4)]
    assert np.ptp(means) < 0.1 * np.mean(means)


# Rendered on main before the study's classes and knobs were added (sha256 of the pixels and labels):
# the demo's data and the first 12 classes must render exactly as they did.
DEMO_PIXELS = "13f8eb3c3e4f729ea7a0e15498632108a593ae82f718eecba80c06e293dd7f9c"
TWELVE_CLASS_PIXELS = "f3ea6fc1994c62b5932c1e37c68ca7ab41d1f35981642fcca7c9cc40979d7873"


def _digest(design, seed, items):
    h = hashlib.sha256()
    for split, index in items:
        clip, label = make_clip(split, index, seed=seed, design=design)
        h.update(clip.tobytes())
        h.update(bytes([label]))
    return h.hexdigest()


def test_demo_and_first_twelve_classes_render_the_pixels_they_always_did():
    demo = [("train", 0), ("train", 1), ("train", 4321), ("validation", 0), ("validation", 999)]
    assert _digest(Design(), 0, demo) == DEMO_PIXELS
    twelve = Design(num_classes=12, num_train=48, num_val=0, background="random", colour="white",
                    num_distractors=(1, 3))
    assert _digest(twelve, 7, [("train", i) for i in range(24)]) == TWELVE_CLASS_PIXELS
    # The new knobs at their defaults are left out of the name and the manifest: the demo's cache holds.
    assert set(synthetic.NEW_KNOBS).isdisjoint(Design().knobs())
    assert synthetic.dataset_name(0, Design()) == "dots8-6000-1000-s0-ae3ca31e"
    assert Design.from_knobs(**Design(class_ids=(3, 12), num_classes=2).knobs()).class_ids == (3, 12)


def test_class_ids_pick_catalogue_entries_in_label_order():
    design = Design.from_knobs(num_classes=3, class_ids=[20, 0, 12])
    assert [c.text for c in design.classes] == [synthetic.CATALOGUE[i].text for i in (20, 0, 12)]
    assert len({c.text for c in synthetic.CATALOGUE}) == len(synthetic.CATALOGUE)  # labels file keys
    for bad, match in (([0, 0, 1], "distinct"), ([0, 1], "must equal"), ([0, 1, 99], "CATALOGUE indices")):
        with pytest.raises(ValueError, match=match):
            Design.from_knobs(num_classes=3, class_ids=bad)
    with pytest.raises(ValueError, match="active"):
        Design(active=(0.5, 1.5))


def _frame_shifts(clip):
    """Per frame pair: the displacement (dy, dx) of the whole frame, from phase correlation: (T-1, 2)."""
    g = clip[..., 0].astype(float)
    n = g.shape[1]
    out = []
    for a, b in zip(g[:-1], g[1:]):
        if np.array_equal(a, b):
            out.append((0, 0))
            continue
        r = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
        dy, dx = np.unravel_index(np.argmax(r), r.shape)
        out.append(((dy + n // 2) % n - n // 2, (dx + n // 2) % n - n // 2))
    return np.array(out)


def _by_text(text):
    return next(i for i, c in enumerate(synthetic.CATALOGUE) if c.text == text)


def test_speed_and_profiles_move_when_their_names_say():
    # 17 frames, 32 px travelled per video length: 2 px between frames while moving, no distractors.
    names = {"linear": "Moving something to the left", "quick": "Moving something quickly to the left",
             "return": "Moving something to the left and back",
             "go_stop": "Moving something to the left, then stopping",
             "stop_go": "Pausing, then moving something to the left"}
    ids = [_by_text(t) for t in names.values()]
    design = Design(num_classes=len(ids), class_ids=tuple(ids), min_frames=17, max_frames=17,
                    travel=(32.0, 32.0), num_distractors=(0, 0), colour="white")
    rng = np.random.default_rng(3)
    dx = {name: _frame_shifts(render_clip(label, rng, design))[:, 1] for label, name in enumerate(names)}
    assert np.all(dx["linear"] == -2) and np.all(dx["quick"] == -4)
    assert np.all(dx["return"][:8] == -2) and np.all(dx["return"][8:] == 2)
    assert np.all(dx["go_stop"][:8] == -2) and np.all(dx["go_stop"][8:] == 0)
    assert np.all(dx["stop_go"][:8] == 0) and np.all(dx["stop_go"][8:] == -2)


def test_active_confines_the_motion_to_a_part_of_the_video():
    design = Design(num_classes=1, min_frames=41, max_frames=41, travel=(40.0, 40.0), num_distractors=(0, 0),
                    colour="white", active=(0.5, 0.5))
    rng = np.random.default_rng(4)
    for _ in range(5):
        dx = _frame_shifts(render_clip(0, rng, design))[:, 1]
        moving = np.flatnonzero(dx)
        assert np.all(dx[moving] == -1)  # the same speed as without `active`, for half the time
        assert 19 <= len(moving) <= 21 and np.all(np.diff(moving) == 1)  # one run of half the video


def test_lifetime_reborns_each_dot_at_a_new_place_every_life_frames():
    # One still dot (travel 0): the frame changes only when the dot is reborn, every 5 frames.
    design = Design(num_classes=1, num_dots=(1, 1), num_distractors=(0, 0), travel=(0.0, 0.0), min_frames=30,
                    max_frames=30, lifetime=(5, 5))
    rng = np.random.default_rng(5)
    for _ in range(3):
        clip = render_clip(0, rng, design)
        changes = np.flatnonzero([not np.array_equal(a, b) for a, b in zip(clip[:-1], clip[1:])])
        assert len(changes) >= 5 and np.all(np.diff(changes) == 5)
    with pytest.raises(ValueError, match="lifetime"):
        Design(lifetime=(0, 5))


def test_prepare_writes_the_ssv2_layout(tmp_path):
    root = prepare(tmp_path / "ds", seed=3, num_workers=1, **TINY)
    labels = json.loads((root / ssv2.LABELS_FILE).read_text())
    design = Design.from_knobs(**TINY)
    assert labels == {cls.text: str(i) for i, cls in enumerate(design.classes)}
    assert all(isinstance(v, str) for v in labels.values())
    ids = set()
    for split in ("train", "validation"):
        entries = json.loads((root / ssv2.SPLIT_FILES[split]).read_text())
        assert len(entries) == design.num_videos(split)
        want = synthetic.split_labels(split, 3, design)
        for i, e in enumerate(entries):
            assert set(e) == {"id", "label", "template", "placeholders"}
            assert int(labels[e["template"].replace("[", "").replace("]", "")]) == want[i]
            assert e["label"] == e["template"].replace("[something]", e["placeholders"][0])
            ids.add(e["id"])
            # The file holds exactly the rendered pixels (lossless VP9).
            frames, label = make_clip(split, i, seed=3, design=design)
            assert label == want[i]
            np.testing.assert_array_equal(read_frames(root / f"{e['id']}.webm", range(len(frames))), frames)
    test = json.loads((root / ssv2.SPLIT_FILES["test"]).read_text())
    assert [set(e) for e in test] == [{"id"}] * TINY["num_test"]
    ids |= {e["id"] for e in test}
    assert len(ids) == TINY["num_train"] + TINY["num_val"] + TINY["num_test"]
    assert all((root / f"{i}.webm").exists() for i in ids)


def test_labels_are_balanced():
    design = Design.from_knobs(num_classes=4, num_train=40)
    counts = np.bincount(synthetic.split_labels("train", 0, design), minlength=4)
    assert counts.tolist() == [10, 10, 10, 10]


def test_second_prepare_reuses_without_rewriting(tmp_path):
    root = prepare(tmp_path / "ds", seed=0, num_workers=1, **TINY)
    stamps = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    assert prepare(tmp_path / "ds", seed=0, num_workers=1, **TINY) == root
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == stamps


def test_default_root_is_named_from_knobs_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_DATA_DIR", str(tmp_path))
    a = prepare(seed=0, num_workers=1, **TINY)
    b = prepare(seed=1, num_workers=1, **TINY)
    c = prepare(seed=0, num_workers=1, **{**TINY, "num_classes": 4})
    assert len({a, b, c}) == 3 and all(p.parent == tmp_path / "builtin" for p in (a, b, c))


def test_unfinished_folder_is_finished_not_used(tmp_path):
    root = tmp_path / "ds"
    prepare(root, seed=0, num_workers=1, **TINY)
    # Simulate a run killed mid-way: no manifest yet, the marker still there, some videos missing.
    manifest = json.loads((root / synthetic.MANIFEST).read_text())
    (root / synthetic.MANIFEST).unlink()
    (root / synthetic.IN_PROGRESS).write_text(json.dumps(manifest))
    videos = sorted(root.glob("*.webm"))
    for p in videos[::2]:
        p.unlink()
    assert not synthetic.is_complete(root, 0, Design.from_knobs(**TINY))
    prepare(root, seed=0, num_workers=1, **TINY)
    assert synthetic.is_complete(root, 0, Design.from_knobs(**TINY))
    assert not (root / synthetic.IN_PROGRESS).exists()
    assert sorted(root.glob("*.webm")) == videos


def test_foreign_or_mismatched_folders_are_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        prepare(foreign, num_workers=1, **TINY)
    root = prepare(tmp_path / "ds", seed=0, num_workers=1, **TINY)
    with pytest.raises(FileExistsError, match="other knobs"):
        prepare(root, seed=1, num_workers=1, **TINY)


def test_unknown_knob_is_refused():
    with pytest.raises(TypeError, match="unknown built-in dataset knob"):
        prepare(num_clases=4)
    with pytest.raises(ValueError, match="video_size"):
        Design(video_size=15)


def test_parallel_writing_gives_the_same_files(tmp_path):
    a = prepare(tmp_path / "a", seed=2, num_workers=1, **TINY)
    b = prepare(tmp_path / "b", seed=2, num_workers=2, **TINY)
    for p in sorted(a.glob("*.webm")):
        n = synthetic.Design.from_knobs(**TINY).max_frames
        fa = read_frames(p, range(min(n, 10)))
        np.testing.assert_array_equal(fa, read_frames(b / p.name, range(min(n, 10))))


def test_ssv2_reader_reads_the_written_dataset_back(tmp_path):
    datasets = pytest.importorskip("ffnlib.datasets")
    root = prepare(tmp_path / "ds", seed=4, num_workers=1, **TINY)
    design = Design.from_knobs(**TINY)
    for split in ("train", "validation"):
        ds = datasets.SSv2(root, split)
        assert ds.classes == [cls.text for cls in design.classes]
        assert [label for _, label in ds.samples] == synthetic.split_labels(split, 4, design).tolist()
        assert [vid for vid, _ in ds.samples] == [synthetic.video_id(split, i, design) for i in range(len(ds))]
        assert ds.check_files() == []
    assert [label for _, label in datasets.SSv2(root, "test").samples] == [-1] * TINY["num_test"]


def _prepare_in_child(root, knobs, start, results):
    start.wait()  # both children call prepare at the same moment
    try:
        results.put(("ok", str(prepare(root, seed=0, num_workers=1, progress=False, **knobs))))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"{type(e).__name__}: {e}"))


@pytest.mark.parametrize("layout", ["ssv2", "ssv1"])
def test_two_processes_preparing_the_same_dataset_at_once(tmp_path, layout):
    """Both return the complete dataset: one writes, the other waits and finds it complete (without the
    lock both wrote, and one crashed on the other's temporary file or in-progress marker)."""
    knobs = {**TINY, "num_train": 12, "layout": layout}
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_prepare_in_child, args=(tmp_path / "ds", knobs, start, results))
                for _ in range(2)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert outcomes == [("ok", str(tmp_path / "ds"))] * 2
    layout = knobs.pop("layout")
    assert synthetic.is_complete(tmp_path / "ds", 0, Design.from_knobs(**knobs), layout)
    assert not [p for p in (tmp_path / "ds").rglob("*") if ".tmp-" in p.name]


def test_prepare_writes_the_ssv1_layout_from_the_same_clips(tmp_path):
    root = prepare(tmp_path / "ds1", seed=3, num_workers=1, layout="ssv1", **TINY)
    design = Design.from_knobs(**TINY)
    assert (root / ssv1.LABELS_FILE).read_text().splitlines() == [cls.text for cls in design.classes]
    assert synthetic.dataset_name(3, design, "ssv1") == synthetic.dataset_name(3, design) + "-ssv1"
    for split in ("train", "validation"):
        lines = (root / ssv1.SPLIT_FILES[split]).read_text().splitlines()
        labels = synthetic.split_labels(split, 3, design)
        assert lines == [f"{synthetic.video_id(split, i, design)};{design.classes[label].text}"
                         for i, label in enumerate(labels)]
        frames, _ = make_clip(split, 0, seed=3, design=design)
        folder = root / ssv1.FRAMES_DIR / synthetic.video_id(split, 0, design)
        assert sorted(p.name for p in folder.iterdir()) == [f"{k:05d}.jpg" for k in range(1, len(frames) + 1)]
        decoded = np.stack([decode_jpeg(folder / f"{k:05d}.jpg") for k in range(1, len(frames) + 1)])
        assert decoded.shape == frames.shape
        assert np.abs(decoded.astype(int) - frames).mean() < 8  # JPEG: close to the rendered pixels, not equal
    assert (root / ssv1.SPLIT_FILES["test"]).read_text().splitlines() == [
        synthetic.video_id("test", i, design) for i in range(TINY["num_test"])]
    with pytest.raises(FileExistsError, match="other knobs, seed or layout"):
        prepare(root, seed=3, num_workers=1, **TINY)  # the ssv2 layout into the ssv1 folder
    with pytest.raises(ValueError, match="layout must be one of"):
        prepare(tmp_path / "x", layout="kinetics", **TINY)

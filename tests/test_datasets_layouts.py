"""Every dataset layout read from small fixtures in its official on-disk format, written from the same
clips: samples, labels, the same clips through the same views, every bad input, one smoke training each."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ffnlib.datasets import MultiFrameClips, VideoClips, open_dataset, open_train_val
from ffnlib.frames import write_frames
from ffnlib.layouts import DatasetError, frames as tsm_frames, hmdb51, kinetics, ssv1, ssv2, video_list
from ffnlib.sampling import centre_indices
from ffnlib.runs import ModelRun
from ffnlib.train import TrainConfig, fit
from ffnlib.video import VideoDecodeError, write_video

CLASSES = ["brush_hair", "climb"]  # sorted, so every layout gives them the same indices
TRAIN = [("v1", 1, 12), ("v2", 0, 9), ("v3", 1, 20), ("v4", 0, 16)]  # (name, label, frames)
VAL = [("v5", 0, 10), ("v6", 1, 14)]
LENGTHS = {name: n for name, _, n in TRAIN + VAL}
LOSSLESS = ("ssv2", "kinetics", "hmdb51", "video_list")
JPEG = ("ssv1", "frames")


def clip_frames(n, height=24, width=32):
    """(n, H, W, 3) uint8: red = 10 * frame number (each frame says where it came from), green and blue ramps."""
    out = np.zeros((n, height, width, 3), dtype=np.uint8)
    out[..., 0] = (10 * np.arange(n)).reshape(-1, 1, 1)
    out[..., 1] = (6 * np.arange(width)).reshape(1, 1, -1)
    out[..., 2] = (8 * np.arange(height)).reshape(1, -1, 1)
    return out


def video_id(layout, name):
    """The video id each layout gives clip `name`."""
    return {"kinetics": f"yt{name}_000010_000020", "hmdb51": f"{name}.avi",
            "video_list": {"v1": "a/v1.webm", "v2": "v2.mp4", "v3": "v3.avi"}.get(name, f"b/{name}.webm")}.get(layout, name)


def write_layouts(base: Path) -> dict:
    """Write the same six clips in every layout; return {layout: open_dataset keywords for the train split}."""
    splits = {"train": TRAIN, "validation": VAL}
    # ssv2: JSON, <id>.webm
    root = base / "ssv2"
    ssv2.write_annotations(root, CLASSES, {s: [{"id": v, "label": CLASSES[c], "template": CLASSES[c],
                                                "placeholders": []} for v, c, _ in rows] for s, rows in splits.items()})
    # ssv1: CSV, 20bn-something-something-v1/<id>/00001.jpg
    ssv1.write_annotations(base / "ssv1", CLASSES, {s: [(v, c) for v, c, _ in rows] for s, rows in splits.items()})
    # frames: TSM list files, {:06d}.jpg frames, category.txt
    tsm_frames.write_list(base / "frames" / "train_videofolder.txt", [(v, n, c) for v, c, n in TRAIN], CLASSES)
    tsm_frames.write_list(base / "frames" / "val_videofolder.txt", [(v, n, c) for v, c, n in VAL])
    # kinetics: CSVs, clips flat or in class folders
    for split, rows in (("train", TRAIN), ("validate", VAL)):
        kinetics.write_csv(base / "kinetics" / f"{split}.csv", [(CLASSES[c], f"yt{v}", 10, 20) for v, c, _ in rows], split)
    # hmdb51: split files of fold 1 (1 train, 2 test, 0 unused), <class>/<video>.avi
    assignment = {name: [(f"{v}.avi", code) for rows, code in ((TRAIN, 1), (VAL, 2)) for v, c, _ in rows if c == k]
                  + [(f"unused{k}.avi", 0)] for k, name in enumerate(CLASSES)}
    hmdb51.write_split_files(base / "hmdb51" / "splits", CLASSES, assignment)
    # video_list: path,label CSVs over several containers
    for split, rows in (("train.csv", TRAIN), ("val.csv", VAL)):
        video_list.write_list(base / "video_list" / split, [(video_id("video_list", v), c) for v, c, _ in rows])

    for name, label, n in TRAIN + VAL:
        pixels = clip_frames(n)
        write_video(root / f"{name}.webm", pixels, lossless=True)
        write_frames(base / "ssv1" / ssv1.FRAMES_DIR / name, pixels, "{:05d}.jpg")
        write_frames(base / "frames" / "images" / name, pixels, "{:06d}.jpg")
        folder = base / "kinetics" / "clips" / (CLASSES[label] if name in ("v2", "v5") else "")
        write_video(folder / kinetics.clip_name(f"yt{name}", 10, 20), pixels, lossless=True)
        write_video(base / "hmdb51" / "videos" / CLASSES[label] / f"{name}.avi", pixels, lossless=True)
        write_video(base / "video_list" / "media" / video_id("video_list", name), pixels, lossless=True)
    return {
        "ssv2": dict(data_root=base / "ssv2", split="train"),
        "ssv1": dict(data_root=base / "ssv1", split="train"),
        "frames": dict(data_root=base / "frames", split="train_videofolder.txt", video_dir=base / "frames" / "images",
                       frame_template="{:06d}.jpg"),
        "kinetics": dict(data_root=base / "kinetics", split="train", video_dir=base / "kinetics" / "clips"),
        "hmdb51": dict(data_root=base / "hmdb51" / "splits", split="train", video_dir=base / "hmdb51" / "videos"),
        "video_list": dict(data_root=base / "video_list", split="train.csv", video_dir=base / "video_list" / "media"),
    }


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return base, write_layouts(base)


def open_layout(layouts, layout, **changes):
    kw = {**layouts[1][layout], **changes}
    return open_dataset(kw.pop("data_root"), kw.pop("split"), kw.pop("video_dir", ""), layout, **kw)


def frame_numbers(clip):
    """The source frame of each time step of a (3, T, S, S) uint8 clip, read off the red channel."""
    return (clip[0].double().mean(dim=(1, 2)) / 10).round().long().tolist()  # (T, S, S) -> (T,)


class PillowFrames:
    """A frame folder decoded whole by Pillow: the reference for the JPEG layouts' clips."""

    def __init__(self, folder: Path, template: str):
        files = sorted(folder.iterdir())
        assert [f.name for f in files] == [template.format(k) for k in range(1, len(files) + 1)]
        self.frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])  # (N, H, W, 3)
        self.num_frames, self.height, self.width = self.frames.shape[:3]

    def rgb(self, frame_idx, box=None):
        frames = self.frames[np.asarray(frame_idx, dtype=np.int64)]  # (T, H, W, 3)
        return frames if box is None else frames[:, box.top:box.top + box.height, box.left:box.left + box.width]


@pytest.mark.parametrize("layout", LOSSLESS + JPEG)
def test_every_layout_gives_the_same_samples(layouts, layout):
    source = open_layout(layouts, layout)
    assert source.classes == (["0", "1"] if layout == "video_list" else CLASSES)  # a video list has no names
    assert source.num_classes == 2 and len(source) == 4
    by_id = dict(source.samples)
    assert by_id == {video_id(layout, name): label for name, label, _ in TRAIN}
    if layout != "hmdb51":  # HMDB51 lists its videos class by class
        assert [vid for vid, _ in source.samples] == [video_id(layout, name) for name, _, _ in TRAIN]
    names = {video_id(layout, name): name for name, _, _ in TRAIN}
    assert source.check_files(progress=False) == [] and source.check_files(decode=False, progress=False) == []

    view = VideoClips(source, num_frames=8, train=False, frame_size=16, resize_size=20)
    reference = VideoClips(open_layout(layouts, "ssv2"), num_frames=8, train=False, frame_size=16, resize_size=20)
    ssv2_index = {vid: i for i, (vid, _) in enumerate(reference.source.samples)}
    multi = MultiFrameClips(source, frame_counts=(4, 8, 16), train=True, frame_size=16, resize_size=20, seed=3)
    for index, (vid, label) in enumerate(source.samples):
        n = LENGTHS[names[vid]]
        assert source.decode(index).num_frames == n
        clip, got_label = view[index]
        assert clip.shape == (3, 8, 16, 16) and got_label == label
        assert frame_numbers(clip) == centre_indices(n, 8).tolist()
        if layout in LOSSLESS:  # the very tensors the SSv2 reader gives for the same pixels
            assert torch.equal(clip, reference[ssv2_index[names[vid]]][0])
        else:  # the tensors a whole-folder Pillow decode of the same JPEG files gives, crop and indices included
            folder = source.media_path(index)
            clips, _ = multi.load(index, video=PillowFrames(folder, source.frame_template))
            assert all(torch.equal(a, b) for a, b in zip(clips, multi[index][:3]))


@pytest.mark.parametrize("layout", LOSSLESS + JPEG)
def test_train_and_validation_splits_of_every_layout(layouts, layout):
    kw = {k: v for k, v in layouts[1][layout].items() if k != "split"}
    train, val = open_train_val(dataset=layout, **kw)
    assert len(train) == 4 and len(val) == 2 and val.classes == train.classes
    assert dict(val.samples) == {video_id(layout, name): label for name, label, _ in VAL}


@pytest.fixture
def broken(layouts, tmp_path):
    """A fresh copy of the fixtures to break; returns a function opening a layout from the copy."""
    base = tmp_path / "copy"
    shutil.copytree(layouts[0], base)

    def opener(layout, **changes):
        kw = {k: Path(str(v).replace(str(layouts[0]), str(base))) if isinstance(v, Path) else v
              for k, v in layouts[1][layout].items()}
        return open_layout((base, {layout: kw}), layout, **changes)

    return base, opener


def _raises(error, opener, layout, words, **changes):
    with pytest.raises(error) as info:
        opener(layout, **changes)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    return info.value


@pytest.mark.parametrize("layout, file", [("ssv1", "ssv1/something-something-v1-train.csv"),
                                          ("ssv1", "ssv1/something-something-v1-labels.csv"),
                                          ("frames", "frames/train_videofolder.txt"), ("kinetics", "kinetics/train.csv"),
                                          ("video_list", "video_list/train.csv")])
def test_a_missing_annotation_file_is_named(broken, layout, file):
    base, opener = broken
    (base / file).unlink()
    err = _raises(DatasetError, opener, layout, ["annotation file not found"])
    assert err.path == str(base / file)


def test_hmdb51_without_split_files_of_the_fold(broken):
    base, opener = broken
    _raises(DatasetError, opener, "hmdb51", ["no split file of fold 2"], fold=2)
    with pytest.raises(ValueError, match="fold"):
        opener("hmdb51", fold=4)


@pytest.mark.parametrize("layout, file, line, words", [
    ("ssv1", "ssv1/something-something-v1-train.csv", "v9", ["line 3", "expected <id>;<class text>"]),
    ("ssv1", "ssv1/something-something-v1-train.csv", "v9;jumping", ["line 3", "class 'jumping' is not in the labels"]),
    ("ssv1", "ssv1/something-something-v1-train.csv", "v1;climb", ["line 3", "'v1' is listed twice (first on line 1)"]),
    ("frames", "frames/train_videofolder.txt", "v9 12", ["line 3", "<folder> <num_frames> <label>"]),
    ("frames", "frames/train_videofolder.txt", "v9 twelve 1", ["line 3", "num_frames must be an integer"]),
    ("frames", "frames/train_videofolder.txt", "v9 12 5", ["line 3", "label 5 is not a class", "category.txt"]),
    ("kinetics", "kinetics/train.csv", "climb,yt9,10", ["line 3", "expected label,youtube_id"]),
    ("kinetics", "kinetics/train.csv", "climb,yt9,ten,20,train", ["line 3", "time_start must be a whole number"]),
    ("hmdb51", "hmdb51/splits/climb_test_split1.txt", "v9.avi 7", ["line 3", "<video>.avi <0|1|2>"]),
    ("video_list", "video_list/train.csv", "v9.webm,first", ["line 3", "label must be an integer"]),
    ("video_list", "video_list/train.csv", "v9.webm", ["line 3", "expected `path,label`"]),
])
def test_a_malformed_line_is_named_with_its_number(broken, layout, file, line, words):
    base, opener = broken
    path = base / file
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [line] + lines[2:]) + "\n")
    err = _raises(DatasetError, opener, layout, [str(path)] + words)
    assert err.path == str(path) and err.line == int(words[0].split()[1])


def test_validation_takes_the_training_classes(broken):
    base, opener = broken
    kw = dict(data_root=base / "video_list", video_dir=base / "video_list" / "media", dataset="video_list")
    (base / "video_list" / "val.csv").write_text("path,label\nb/v5.webm,0\n")  # no video of class 1
    train, val = open_train_val(**kw)
    assert val.classes == train.classes == ["0", "1"]
    (base / "video_list" / "val.csv").write_text("path,label\nb/v5.webm,2\n")  # a class training never sees
    with pytest.raises(DatasetError, match="its 3 classes are not those of the training split"):
        open_train_val(**kw)


def test_a_class_not_in_the_labels(broken):
    base, opener = broken
    (base / "kinetics" / "validate.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                                    "jumping,yt5,10,20,validate\n")
    _raises(DatasetError, opener, "kinetics", ["line 2", "class 'jumping' is not in train.csv"], split="validate")
    (base / "kinetics" / "train.csv").write_text("label,youtube,start\n")
    _raises(DatasetError, opener, "kinetics", ["line 1", "expected the header"])


def _problem(source, index, decode=True):
    problems = source.check_files(decode=decode, progress=False)
    assert [p.video_id for p in problems] == [source.samples[index][0]]
    with pytest.raises(VideoDecodeError) as info:
        source.decode(index)
    assert f"video id {source.samples[index][0]}" in info.value.cause
    assert str(source.annotation_file) in info.value.cause
    return info.value


@pytest.mark.parametrize("layout", LOSSLESS + JPEG)
def test_a_missing_video_or_frame_folder_fails_naming_it(broken, layout):
    base, opener = broken
    source = opener(layout) if layout != "kinetics" else None
    if layout == "kinetics":  # missing clips are found up front
        (base / "kinetics" / "clips" / kinetics.clip_name("ytv3", 10, 20)).unlink()
        _raises(DatasetError, opener, layout, ["1 of 4 clips are not in", "ytv3_000010_000020",
                                               "skip_missing_videos=True"])
        skipped = opener(layout, skip_missing_videos=True)
        assert [vid for vid, _ in skipped.samples] == ["ytv1_000010_000020", "ytv2_000010_000020", "ytv4_000010_000020"]
        assert [p.video_id for p in skipped.missing] == ["ytv3_000010_000020"]
        return
    index = 2
    path = source.media_path(index)
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    err = _problem(source, index, decode=False)
    assert err.path == str(path) and "does not exist" in err.cause


def test_frame_folder_problems_name_the_folder_and_the_frame(broken):
    base, opener = broken
    source = opener("ssv1")
    folders = [source.media_path(i) for i in range(4)]
    for f in folders[0].iterdir():
        f.unlink()  # an empty folder
    assert "the folder is empty" in _problem(source, 0, decode=False).cause
    shutil.rmtree(folders[0])
    shutil.copytree(base / "ssv1" / ssv1.FRAMES_DIR / "v5", folders[0])  # restore: v5 has 10 frames, so does not matter
    (folders[1] / "00004.jpg").unlink()  # a frame missing in the middle
    err = source.check_files(decode=False, progress=False)
    assert [(p.video_id, p.cause) for p in err] == [("v2", "frame 00004.jpg is missing (1 of frames 1..9 missing)")]
    shutil.copy(folders[2] / "00004.jpg", folders[1] / "00004.jpg")
    data = (folders[3] / "00007.jpg").read_bytes()
    (folders[3] / "00007.jpg").write_bytes(data[: len(data) // 2])  # a corrupt JPEG: found only by decoding
    assert source.check_files(decode=False, progress=False) == []
    problems = source.check_files(decode=True, progress=False)
    assert [(p.video_id, p.path) for p in problems] == [("v4", folders[3] / "00007.jpg")]
    assert "corrupt JPEG" in problems[0].cause


def test_a_frame_count_that_disagrees_with_the_list_file(broken):
    base, opener = broken
    path = base / "frames" / "train_videofolder.txt"
    path.write_text(path.read_text().replace("v2 9 0", "v2 11 0"))
    source = opener("frames")
    err = _problem(source, 1, decode=False)
    assert "the annotation says 11 frames, the folder holds 9" in err.cause


def test_options_a_layout_does_not_take_are_refused(layouts):
    with pytest.raises(ValueError, match="frame_template='{:06d}.jpg' is for the frame layouts"):
        open_layout(layouts, "ssv2", frame_template="{:06d}.jpg")
    with pytest.raises(ValueError, match="skip_missing_videos is for the kinetics layout"):
        open_layout(layouts, "ssv1", skip_missing_videos=True)
    with pytest.raises(ValueError, match="dataset 'ssv3'"):
        open_dataset("x", "train", "", "ssv3")
    with pytest.raises(TypeError, match="builtin="):
        open_dataset("", "train", "", {"num_classes": 4})
    with pytest.raises(ValueError, match="built-in data"):
        open_dataset("", "train", "", "kinetics")
    with pytest.raises(ValueError, match="config: dataset 'ucf101': expected one of"):
        TrainConfig.from_dict({"dataset": "ucf101"})
    with pytest.raises(ValueError, match="frame_template"):
        TrainConfig.from_dict({"dataset": "ssv1", "frame_template": "frames.jpg"})


@pytest.mark.parametrize("layout", LOSSLESS + JPEG)
def test_a_smoke_training_on_every_layout(layouts, layout, tmp_path, torch_state):
    kw = {k: str(v) if isinstance(v, Path) else v for k, v in layouts[1][layout].items()}
    if layout in ("frames", "video_list"):
        kw["train_split"] = kw.pop("split")
        kw["val_split"] = {"frames": "val_videofolder.txt", "video_list": "val.csv"}[layout]
    else:
        kw.pop("split")
    config = TrainConfig.from_dict(dict(kw, dataset=layout, arch="small", frame_size=16, resize_size=20, num_workers=0,
                                        epochs=1, batch_size=2, steps_per_epoch=2, recipe="ffn", frame_counts=[4, 8],
                                        eval_frames=[4, 8], threads=1, deterministic=True))
    result = fit(config, tmp_path / "run", progress=False)
    (metrics,) = ModelRun(tmp_path / "run").read_metrics()
    assert metrics["epoch"] == 1 and np.isfinite(metrics["train_loss"])
    assert 0 <= metrics["val_top1_4"] <= 100 and 0 <= metrics["val_top1_8"] <= 100
    logits = result.model([torch.zeros(1, 3, t, 16, 16) for t in (4, 8)])
    assert [tuple(z.shape) for z in logits] == [(1, 2), (1, 2)]  # the number of classes comes from the data

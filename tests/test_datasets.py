import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ffnlib.datasets import (
    DatasetError,
    MultiFrameClips,
    SSv2,
    VideoClips,
    describe_videos,
    open_dataset,
)
from ffnlib.layouts.ssv2 import LABELS_FILE, SPLIT_FILES
from ffnlib.sampling import centre_indices
from ffnlib.video import VideoDecodeError, write_video

FIXTURES = Path(__file__).parent / "fixtures" / "ssv2"
TRAIN_IDS = ["78687", "42326", "100904", "80715"]
NUM_VIDEO_FRAMES = {"78687": 48, "42326": 45, "100904": 3, "80715": 20}


def timed_frames(num_frames, height=24, width=32):
    """(T, H, W, 3) uint8: red = 5 * frame number (so each frame says where it came from),
    green = a column ramp, blue = a row ramp (so each pixel says where it came from)."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    frames[..., 0] = (5 * np.arange(num_frames)).reshape(-1, 1, 1)
    frames[..., 1] = (7 * np.arange(width)).reshape(1, 1, -1)
    frames[..., 2] = (9 * np.arange(height)).reshape(1, -1, 1)
    return frames


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The JSON fixtures plus one small lossless video per train id (video lengths differ on purpose)."""
    root = tmp_path_factory.mktemp("ssv2")
    for f in FIXTURES.glob("*.json"):
        shutil.copy(f, root / f.name)
    for video_id, n in NUM_VIDEO_FRAMES.items():
        write_video(root / f"{video_id}.webm", timed_frames(n), lossless=True)
    return root


def frame_numbers(clip):
    """The source frame of each time step of a (3, T, S, S) uint8 clip, read off the red channel."""
    return (clip[0].double().mean(dim=(1, 2)) / 5).round().long().tolist()  # (T, S, S) -> (T,)


def small_view(cls, root, **kw):
    return cls(SSv2(root, "train"), frame_size=16, resize_size=20, **kw)


# ---- annotations ----

def test_labels_and_samples_from_the_fixtures(root):
    ds = SSv2(root, "train")
    assert ds.classes == ["Approaching something with your camera", "Putting something on a surface",
                          "Pushing something from left to right", "Pushing something from right to left"]
    assert ds.num_classes == 4 and len(ds) == 4
    assert ds.samples == [("78687", 2), ("42326", 1), ("100904", 0), ("80715", 3)]
    assert SSv2(root, "validation").samples == [("74225", 1), ("116154", 3)]
    assert SSv2(root, "test").samples == [("1420", -1), ("50", -1)]
    assert ds.video_path("78687") == root / "78687.webm"
    assert SSv2(root, "train", video_dir="/videos").video_path("78687") == Path("/videos/78687.webm")
    opened = open_dataset(str(root), "validation", "")
    assert opened.samples == [("74225", 1), ("116154", 3)] and opened.video_dir == root


def _broken_root(tmp_path, labels=None, train=None):
    for f in FIXTURES.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    if labels is not None:
        (tmp_path / LABELS_FILE).write_text(labels)
    if train is not None:
        (tmp_path / SPLIT_FILES["train"]).write_text(train)
    return tmp_path


ENTRY = {"id": "9", "label": "x", "template": "Putting [something] on a surface", "placeholders": ["x"]}


@pytest.mark.parametrize("labels, train, file, words", [
    ('{"Approaching something": "0",', None, LABELS_FILE, ["malformed JSON"]),
    ('["a", "b"]', None, LABELS_FILE, ["expected a non-empty object"]),
    ('{"a": "zero"}', None, LABELS_FILE, ["'a'", "expected an index"]),
    ('{"a": "0", "b": "0"}', None, LABELS_FILE, ["index 0", "'a'", "'b'"]),
    ('{"a": "0", "b": "2"}', None, LABELS_FILE, ["0..1", "missing [1]"]),
    (None, '[{"id": "9", "template": "Putting [something] on a surface"', SPLIT_FILES["train"], ["malformed JSON"]),
    (None, '{"id": "9"}', SPLIT_FILES["train"], ["expected a list"]),
    (None, '[{"template": "Putting [something] on a surface"}]', SPLIT_FILES["train"], ["entry 0", '"id"']),
    (None, '[{"id": "9", "label": "x"}]', SPLIT_FILES["train"], ["video id 9", "template"]),
    (None, json.dumps([ENTRY, {**ENTRY, "id": 10, "template": "Putting [something] on [something]"}]),
     SPLIT_FILES["train"], ["video id 10", "'Putting [something] on [something]'", "closest class: 'Putting something on a surface'"]),
    (None, json.dumps([ENTRY, ENTRY]), SPLIT_FILES["train"], ["video id 9", "more than once"]),
])
def test_bad_annotations_name_the_file_and_the_problem(tmp_path, labels, train, file, words):
    root = _broken_root(tmp_path, labels, train)
    with pytest.raises(DatasetError) as info:
        SSv2(root, "train")
    assert info.value.path == str(root / file)
    for word in [str(root / file)] + words:
        assert word in str(info.value)


def test_missing_annotation_file_and_unknown_split(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found"):
        SSv2(tmp_path, "train")
    with pytest.raises(ValueError, match="'validation'"):
        SSv2(FIXTURES, "val")


# ---- videos on disk ----

def test_check_files_lists_every_missing_or_unreadable_video(root, tmp_path):
    bad = _broken_root(tmp_path)
    shutil.copy(root / "78687.webm", bad / "78687.webm")
    (bad / "42326.webm").write_bytes(b"")
    (bad / "100904.webm").write_bytes(b"\x1a\x45\xdf\xa3 not really a webm" * 50)
    problems = SSv2(bad, "train").check_files(progress=False)
    assert [(p.video_id, p.path) for p in problems] == [(i, bad / f"{i}.webm") for i in ("42326", "100904", "80715")]
    assert "empty" in problems[0].cause and "does not exist" in problems[2].cause
    assert "80715" in str(problems[2]) and str(bad / "80715.webm") in str(problems[2])
    quick = SSv2(bad, "train").check_files(decode=False, progress=False)
    assert [p.video_id for p in quick] == ["42326", "80715"]  # garbage passes a check without decoding
    assert SSv2(root, "train").check_files(progress=False) == []


def test_a_missing_video_fails_naming_the_file_and_the_id(tmp_path):
    view = VideoClips(SSv2(_broken_root(tmp_path), "train"), frame_size=16, resize_size=20)
    with pytest.raises(VideoDecodeError) as info:
        view[1]
    assert info.value.path == str(tmp_path / "42326.webm")
    assert "does not exist" in info.value.cause and "video id 42326" in info.value.cause


def test_describe_videos(root):
    table = describe_videos(SSv2(root, "train"), progress=False)
    assert table["video_id"].tolist() == TRAIN_IDS
    assert table["num_video_frames"].tolist() == [NUM_VIDEO_FRAMES[i] for i in TRAIN_IDS]
    assert table["class_name"][0] == "Pushing something from left to right"
    assert set(table["height"]) == {24} and set(table["width"]) == {32}


# ---- the views ----

def test_single_t_view_in_test_mode_takes_segment_centres(root):
    view = small_view(VideoClips, root, num_frames=8, train=False)
    for index, video_id in enumerate(TRAIN_IDS):
        clip, label = view[index]
        assert clip.shape == (3, 8, 16, 16) and clip.dtype == torch.uint8
        assert label == view.source.samples[index][1]
        assert frame_numbers(clip) == centre_indices(NUM_VIDEO_FRAMES[video_id], 8).tolist()


def test_num_frames_override_for_one_sample(root):
    view = small_view(VideoClips, root, num_frames=16, train=False)
    clip, label = view[(0, 4)]
    assert clip.shape == (3, 4, 16, 16) and label == 2
    assert frame_numbers(clip) == [6, 18, 30, 42]
    assert view[0][0].shape == (3, 16, 16, 16)


def test_multi_frame_view_returns_one_clip_per_frame_count_from_its_draw(root):
    view = small_view(MultiFrameClips, root, train=True, seed=3)
    for index in range(len(view)):
        clip_4, clip_8, clip_16, label = view[index]
        draw = view.draw(index)
        assert [c.shape for c in (clip_4, clip_8, clip_16)] == [(3, t, 16, 16) for t in (4, 8, 16)]
        assert label == view.source.samples[index][1]
        for clip, idx in zip((clip_4, clip_8, clip_16), draw.frame_idx):
            assert frame_numbers(clip) == idx.tolist()
    assert [c.shape[1] for c in small_view(MultiFrameClips, root, frame_counts=(2, 6))[0][:2]] == [2, 6]


def test_one_crop_for_every_frame_of_every_clip(root):
    """Green and blue encode the pixel position and do not change over time: with one shared crop
    they are identical in all 28 frames; a crop drawn per frame or per clip would make them differ."""
    view = small_view(MultiFrameClips, root, train=True)
    crops = set()
    for epoch in range(4):
        view.set_epoch(epoch)
        clips = view[0][:3]
        spatial = torch.cat([c[1:] for c in clips], dim=1)  # (2, 28, S, S)
        assert torch.equal(spatial, spatial[:, :1].expand_as(spatial))
        crops.add(view.draw(0).crop)
    assert len(crops) > 1  # while the crop does change from one epoch to the next


def test_randomness_depends_on_seed_epoch_and_index_only(root):
    view = small_view(MultiFrameClips, root, train=True, seed=5)
    forward = [view[i] for i in range(4)]
    backward = [view[i] for i in reversed(range(4))][::-1]
    for a, b in zip(forward, backward):
        assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3]))
    draws = {}
    for epoch in range(6):
        view.set_epoch(epoch)
        draws[epoch] = view.draw(0)
    assert len({tuple(d.frame_idx[2].tolist()) for d in draws.values()}) > 1
    view.set_epoch(2)
    assert np.array_equal(view.draw(0).frame_idx[2], draws[2].frame_idx[2]) and view.draw(0).crop == draws[2].crop
    other_seed = small_view(MultiFrameClips, root, train=True, seed=6)
    assert any(other_seed.draw(i).frame_idx[2].tolist() != view.draw(i).frame_idx[2].tolist() for i in range(4))


def test_samples_do_not_depend_on_the_number_of_loader_workers(root):
    view = small_view(MultiFrameClips, root, train=True, seed=1)
    view.set_epoch(2)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(view, batch_size=2, num_workers=workers)
        batches[workers] = [b for b in loader]
    for a, b in zip(batches[0], batches[2]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert batches[0][0][2].shape == (2, 3, 16, 16, 16)  # (B, C, T, S, S) for the 16-frame clip


def test_test_mode_is_deterministic(root):
    a = small_view(MultiFrameClips, root, train=False, seed=0)
    b = small_view(MultiFrameClips, root, train=False, seed=9)
    b.set_epoch(3)
    for x, y in zip(a[1][:3], b[1][:3]):
        assert torch.equal(x, y)
    assert a.draw(1).crop is None


def test_index_checks(root):
    view = small_view(VideoClips, root, train=False)
    with pytest.raises(IndexError, match="out of range"):
        view[4]
    assert torch.equal(view[-1][0], view[3][0])
    with pytest.raises(ValueError, match="seed"):
        small_view(VideoClips, root, seed=-1)

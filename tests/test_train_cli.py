"""`python -m ffnlib.train`: every error a user can cause is one line naming the file or key, exit 2,
and the settings are checked before any data is opened."""
import errno
import json
import shutil

import pytest
import yaml

import ffnlib.train.checkpoint as checkpoint
from ffnlib.train.__main__ import main

TINY = dict(arch="small", frame_size=32, resize_size=36, num_workers=0, epochs=1, batch_size=4, steps_per_epoch=1,
            lr=0.05, num_frames=4, eval_frames=[4], val_max_videos=4, threads=1)


@pytest.fixture
def data(tiny_root, tmp_path):
    """A copy of the tiny dataset that a test may damage."""
    return shutil.copytree(tiny_root, tmp_path / "data")


def train(tmp_path, capsys, *extra, **config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**TINY, **config}))
    code = main(["--config", str(path), "--model-dir", str(tmp_path / "model"), "--no-progress", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    return code, (err[-1] if err else "")


@pytest.mark.parametrize("changes, message", [
    ({"arch": "resnet5"}, "arch='resnet5': expected one of"),
    ({"model_kwargs": {"zero_init": False}}, "model_kwargs={'zero_init': False}: "),
    ({"model_kwargs": {"fold_div": 0}}, "must be positive"),
    ({"builtin": {"num_clases": 8}}, "num_clases"),
    ({"seed": -1}, "seed=-1: expected a non-negative integer"),
    ({"device": "cuda:0"}, "CUDA is not available"),
    ({"lr": float("nan")}, "lr=nan: expected a finite number"),
    ({"epohcs": 2}, "unknown config key(s) ['epohcs']"),
])
def test_settings_are_checked_before_any_data_is_opened(tmp_path, capsys, torch_state, changes, message):
    code, line = train(tmp_path, capsys, data_root=str(tmp_path / "no-such-data"), **changes)
    assert code == 2 and line.startswith("error: ") and message in line, line


def test_a_missing_data_folder(tmp_path, capsys, torch_state):
    code, line = train(tmp_path, capsys, data_root=str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in line and "(folder" in line and "does not exist" in line, line


def test_malformed_labels_and_an_unknown_class(data, tmp_path, capsys, torch_state):
    labels = data / "something-something-v2-labels.json"
    text = labels.read_text()
    labels.write_text(text[:-5])
    code, line = train(tmp_path, capsys, data_root=str(data))
    assert code == 2 and "labels.json: malformed JSON" in line, line
    labels.write_text(text)
    split = data / "something-something-v2-train.json"
    entries = json.loads(split.read_text())
    entries[3]["template"] = "Juggling [something]"
    split.write_text(json.dumps(entries))
    code, line = train(tmp_path, capsys, data_root=str(data))
    assert code == 2 and "train.json: video id" in line and "'Juggling [something]' is no class" in line, line


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("damage, message", [("delete", "file does not exist"), ("empty", "file is empty")])
def test_a_missing_or_empty_video_is_named_also_from_a_loader_worker(data, tmp_path, capsys, torch_state,
                                                                     num_workers, damage, message):
    for video in data.glob("*.webm"):  # every video: whichever the first batch draws
        video.unlink() if damage == "delete" else video.write_bytes(b"")
    code, line = train(tmp_path, capsys, data_root=str(data), num_workers=num_workers)
    assert code == 2 and message in line and ".webm" in line and "video id" in line, line


def test_a_damaged_checkpoint_and_one_of_another_config(tiny_root, tmp_path, capsys, torch_state):
    assert train(tmp_path, capsys, data_root=str(tiny_root))[0] == 0
    code, line = train(tmp_path, capsys, data_root=str(tiny_root), arch="medium")
    assert code == 2 and "last.pt was trained with another config (arch: checkpoint 'small' vs config 'medium')" in line
    (tmp_path / "model" / "checkpoints" / "last.pt").write_bytes(b"\x80\x02 not a checkpoint")
    code, line = train(tmp_path, capsys, data_root=str(tiny_root))
    assert code == 2 and "last.pt: not a readable checkpoint" in line and "weights_only" not in line, line


def test_a_model_folder_that_is_a_file(tiny_root, tmp_path, capsys, torch_state):
    (tmp_path / "model").write_text("")
    code, line = train(tmp_path, capsys, data_root=str(tiny_root))
    assert code == 2 and "model is a file, not a model folder" in line, line


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tiny_root, tmp_path, capsys, torch_state,
                                                                   monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    code, line = train(tmp_path, capsys, data_root=str(tiny_root))
    assert code == 2 and "cannot write" in line and "No space left on device" in line, line


def test_debug_shows_the_traceback(tmp_path, capsys, torch_state):
    with pytest.raises(Exception, match="arch='resnet5'"):
        train(tmp_path, capsys, "--debug", arch="resnet5")

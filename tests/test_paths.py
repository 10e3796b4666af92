from pathlib import Path

import pytest

from ffnlib import paths
from ffnlib.datasets import open_dataset
from ffnlib.paths import PROJECT_ROOT, project_path
from ffnlib.train import TrainConfig
from ffnlib.train import open_splits

FIXTURES = "tests/fixtures/ssv2"  # relative to the project root, as configs/ssv2_r50.yaml writes its paths


def test_project_path_takes_relative_paths_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_path("data/ssv2/labels") == PROJECT_ROOT / "data/ssv2/labels"
    assert project_path(tmp_path / "x") == tmp_path / "x"
    assert project_path("~/w.pth") == Path.home() / "w.pth"


def test_relative_data_root_works_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # papermill runs notebooks in notebooks/, not the project root
    assert open_dataset(FIXTURES, "validation").root == PROJECT_ROOT / FIXTURES
    train, val = open_splits(TrainConfig(data_root=FIXTURES, video_dir="videos"))
    assert train.root == PROJECT_ROOT / FIXTURES and val.split == "validation"
    assert train.video_path("1") == PROJECT_ROOT / "videos" / "1.webm"


def test_relative_pretrained_path_is_taken_from_the_project_root(tmp_path, monkeypatch):
    from ffnlib.train import setup

    seen = []
    monkeypatch.setattr(setup, "create_model", lambda name, n, pretrained=None, **kw: seen.append(pretrained))
    monkeypatch.chdir(tmp_path)
    for given in ("data/weights/resnet50-imagenet.pth", "imagenet", ""):
        setup.build_model(TrainConfig(arch="small", pretrained=given), num_classes=3)
    assert seen == [PROJECT_ROOT / "data/weights/resnet50-imagenet.pth", "imagenet", None]


def test_write_text_atomic_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "eval_best.csv"
    paths.write_text_atomic(target, "old\n")
    assert target.read_text() == "old\n"

    def killed(*_args):
        raise KeyboardInterrupt  # stands for a kill between writing the temporary file and the rename

    monkeypatch.setattr(paths.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        paths.write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["eval_best.csv"]  # no temporary file left behind
    monkeypatch.undo()
    paths.write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"

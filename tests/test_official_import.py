"""python -m ffnlib.official_import: an official checkpoint becomes a model folder of a run folder that
the workbook's evaluation (ffnlib.tfd, notebooks 05 and 08) reads like a model trained here."""
from __future__ import annotations

import pytest
import torch
import yaml

from ffnlib import official_import, tables, tfd
from ffnlib.models import load_official_checkpoint
from ffnlib.models.official import OfficialCheckpoint
from ffnlib.runs import ModelRun
from ffnlib.train import TrainConfig, load_checkpoint, load_trained
from official_layouts import COUNTS, official_shapes, random_state, save_official

TINY_CLASSES = 8  # conftest's tiny built-in dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An FFN (FFN repo) and a TSM trained at 8 frames (TSM repo naming) for the tiny data's 8 classes."""
    folder = tmp_path_factory.mktemp("official_files")
    paths = {"ffn": folder / "tsm_ffn_sthv2.pth.tar",
             "tsm_repo": folder / "TSM_somethingv2_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth"}
    for seed, (layout, path) in enumerate(paths.items()):
        save_official(path, random_state(official_shapes(layout, num_classes=TINY_CLASSES), seed))
    return paths


@pytest.fixture
def profile(tmp_path, tiny_root):
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"train": {"data_root": str(tiny_root), "frame_size": 28, "resize_size": 32,
                                              "num_workers": 0, "device": "cpu", "num_frames": 16}}))
    return path


@pytest.mark.slow
def test_imported_models_are_evaluated_like_trained_ones(tmp_path, files, profile):
    run = tmp_path / "run"
    assert official_import.main([str(files["ffn"]), str(run), "--config", str(profile)]) == 0
    tsm_dir = official_import.import_official(files["tsm_repo"], run, profile=profile)
    assert sorted(p.name for p in (run / "models").iterdir()) == ["ffn", "st_8f"]  # the notebooks' names
    assert tsm_dir == run / "models" / "st_8f"

    for name, path, t in (("ffn", files["ffn"], 4), ("st_8f", files["tsm_repo"], 8)):
        folder = ModelRun(run / "models" / name)
        assert folder.best.exists() and folder.final.exists() and folder.config.exists()
        state = load_checkpoint(folder.best)
        assert state["step"] == 0 and state["num_classes"] == TINY_CLASSES
        assert state["source"]["official"] == str(path.resolve()) and len(state["source"]["sha256"]) == 64
        trained, config = load_trained(folder.root)  # what notebooks 05 and 08 load
        assert TrainConfig.from_yaml(folder.config) == config
        reference = load_official_checkpoint(path)
        clip = torch.randn(2, 3, t, 28, 28, generator=torch.Generator().manual_seed(t))
        with torch.no_grad():
            assert torch.equal(trained(clip), reference(clip)), name

    ffn_config = load_trained(run / "models" / "ffn")[1]
    assert (ffn_config.recipe, ffn_config.arch, ffn_config.frame_counts) == ("ffn", "resnet50", COUNTS)
    assert ffn_config.model_kwargs == {"adaconv_init": "official", "shift_mode": "official"}
    assert load_checkpoint(ModelRun(run / "models" / "ffn").best)["best"] == {"top1_16": 63.61, "epoch": 50}

    result = tfd.collect([run], [4, 8], batch_size=4, max_videos=4, progress=False)  # notebook 08's first step
    assert set(zip(result.table["model"], result.table["train_frames"])) == {("ffn", "4/8/16"), ("st", "8")}
    csv_path, md_path = tables.write_tables(result.table, run)
    assert "FFN (4/8/16F)" in md_path.read_text() and csv_path.exists()


def test_an_existing_model_folder_is_replaced_only_when_forced(tmp_path, files, profile):
    run = tmp_path / "run"
    folder = official_import.import_official(files["tsm_repo"], run, "vanilla_16f", profile=profile,
                                             overrides={"num_frames": 16})
    stale = [folder / "eval_best.csv", folder / "metrics.jsonl", folder / "checkpoints" / "last.pt"]
    for path in stale:
        path.write_text("from an older model")
    with pytest.raises(FileExistsError, match="vanilla_16f already holds best.pt, final.pt, last.pt; pass --force"):
        official_import.import_official(files["tsm_repo"], run, "vanilla_16f", profile=profile)
    assert official_import.main([str(files["tsm_repo"]), str(run), "vanilla_16f", "--config", str(profile)]) == 2
    official_import.import_official(files["tsm_repo"], run, "vanilla_16f", profile=profile,
                                    overrides={"num_frames": 16}, force=True)
    assert not any(path.exists() for path in stale)
    assert load_trained(folder)[1].model == "vanilla"


def test_a_checkpoint_for_another_dataset_is_refused(tmp_path, tiny_root, profile, capsys):
    path = tmp_path / "tsm_k400.pth"
    save_official(path, random_state(official_shapes("tsm", num_classes=400)))
    assert official_import.main([str(path), str(tmp_path / "run"), "--config", str(profile)]) == 2
    assert f"400 classes, but {tiny_root}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def spec(family="tsm", num_frames=None, **kwargs) -> OfficialCheckpoint:
    implied = {"adaconv_init": "official", "shift_mode": "official", "frame_counts": COUNTS} if family == "ffn" else {}
    return OfficialCheckpoint(source="f.pth", layout="ffn_repo", family=family, depth=50, num_classes=174,
                              frame_counts=COUNTS if family == "ffn" else (), num_frames=num_frames,
                              model_kwargs={**implied, **kwargs})


@pytest.mark.parametrize("checkpoint, overrides, num_frames, model_name", [
    (spec(), {}, 16, "vanilla_16f"),  # nothing says: the profile's num_frames
    (spec(num_frames=8), {}, 8, "st_8f"),  # the TSM repo's file name
    (spec(num_frames=8), {"num_frames": 16}, 16, "vanilla_16f"),  # --set wins
])
def test_the_training_t_of_a_tsm(profile, checkpoint, overrides, num_frames, model_name):
    config = official_import.imported_config(checkpoint, profile, overrides)
    assert (config.recipe, config.num_frames, config.model_name, config.pretrained) == ("vanilla", num_frames, model_name, "")


@pytest.mark.parametrize("overrides, message", [
    ({"recipe": "vanilla"}, r"--set recipe='vanilla' contradicts the weights \(recipe='ffn'\)"),
    ({"frame_counts": [4, 16]}, r"--set frame_counts=\[4, 16\] contradicts the weights"),
    ({"arch": "resnet101"}, r"--set arch='resnet101' contradicts the weights \(arch='resnet50'\)"),
    ({"model_kwargs": {"adaconv_init": "paper"}}, r"model_kwargs \{'adaconv_init': 'paper'\} contradict the weights"),
])
def test_settings_that_contradict_the_weights_are_refused(profile, overrides, message):
    with pytest.raises(ValueError, match=message):
        official_import.imported_config(spec("ffn"), profile, overrides)
    config = official_import.imported_config(spec("ffn"), profile, {"frame_counts": [4, 8, 16], "lam": 0.5})
    assert (config.recipe, config.frame_counts, config.lam) == ("ffn", COUNTS, 0.5)


def test_a_profile_whose_model_kwargs_change_the_network_is_refused(tmp_path, files, profile):
    """fold_div has no weights: a profile giving another one would evaluate another network."""
    data = yaml.safe_load(profile.read_text())
    data["train"]["model_kwargs"] = {"fold_div": 4}
    profile.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"does not rebuild the same network at T=8 .*'fold_div': 4"):
        official_import.import_official(files["tsm_repo"], tmp_path / "run", profile=profile)
    assert not (tmp_path / "run").exists()

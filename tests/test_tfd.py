import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import ffnlib.tfd as tfd
from ffnlib import tables
from ffnlib.models import flops
from ffnlib.runs import ModelRun, RunFolderError, WorkbookRun
from ffnlib.train import TrainConfig, fit, load_checkpoint, save_checkpoint

SIZES = dict(arch="small", frame_size=32, resize_size=36, num_workers=0, batch_size=4, lr=0.05, threads=1,
             deterministic=True, epochs=1, steps_per_epoch=2, eval_frames=[4], val_max_videos=8)


def test_class_tfd_sorts_by_drop_and_averages_seeds():
    rows = []
    for seed, (drop_a, drop_b) in enumerate([(80.0, 0.0), (60.0, 20.0)]):
        for t, (a, b) in {16: (90.0, 50.0), 4: (90.0 - drop_a, 50.0 - drop_b)}.items():
            rows += [{"model": "vanilla", "seed": seed, "eval_frames": t, "label": 0, "class_name": "a", "top1": a, "n": 4},
                     {"model": "vanilla", "seed": seed, "eval_frames": t, "label": 1, "class_name": "b", "top1": b, "n": 4},
                     {"model": "vanilla", "seed": seed, "eval_frames": t, "label": 2, "class_name": "c",
                      "top1": float("nan"), "n": 0}]
    out = tfd.class_tfd(pd.DataFrame(rows), "vanilla")
    assert out["class_name"].tolist() == ["a", "b"]  # class c had no video
    assert out["drop"].tolist() == [70.0, 10.0] and out["seeds"].tolist() == [2, 2] and out["n"].tolist() == [4, 4]
    with pytest.raises(ValueError, match="evaluated at T"):
        tfd.class_tfd(pd.DataFrame(rows), "vanilla", high=8)
    with pytest.raises(ValueError, match="no per-class results of model 'ffn'"):
        tfd.class_tfd(pd.DataFrame(rows), "ffn")


# ------------------------------------------------------------------------------------------ real run folders
@pytest.fixture(scope="module")
def two_seeds(tiny_root, tmp_path_factory):
    """Two workbook run folders (seeds 0 and 1), each with an 8F TSM (an ST model) and a 4/8 FFN,
    trained for two steps; seed 0 also has a 4F TSM, so that its ST models make an ensemble."""
    import torch

    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("tfd_runs")
    try:
        for seed in (0, 1):
            for recipe, num_frames in [("vanilla", 8), ("ffn", 8)] + ([("vanilla", 4)] if seed == 0 else []):
                config = TrainConfig.from_dict(dict(SIZES, data_root=str(tiny_root), recipe=recipe,
                                                    num_frames=num_frames, frame_counts=[4, 8], seed=seed))
                fit(config, root / f"seed{seed}" / "models" / config.model_name, progress=False)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    return [root / "seed0", root / "seed1"]


def test_collect_evaluates_every_model_of_every_run_then_reads_the_cache(two_seeds, monkeypatch):
    result = tfd.collect(two_seeds, [4, 8], max_videos=8, batch_size=8, progress=False)
    table = result.table
    assert len(table) == (3 + 1 + 2) * 2  # (seed 0: 3 models and their ensemble; seed 1: 2 models) x T
    assert list(dict.fromkeys(table["model"])) == ["st", "ensemble", "ffn"]
    assert set(table["train_frames"]) == {"4", "8", "4/8"} and set(table["seed"]) == {0, 1}
    assert set(table["model_name"]) == {"st_4f", "st_8f", "ffn_4-8", "ensemble_4-8"}
    assert set(table["variant"]) == {""} and set(table["data"]) == {"ssv2"} and set(table["arch"]) == {"small"}
    assert set(table["run_dir"]) == {str(d) for d in two_seeds} and (table["n"] == 8).all()
    per_class = result.per_class
    assert set(per_class.columns) >= {"model", "train_frames", "seed", "model_name", "label", "class_name", "top1"}
    assert len(per_class) == 6 * 2 * 8  # 6 model folders and ensembles x 2 T x 8 classes

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated again: the cache was not used")

    monkeypatch.setattr(tfd, "evaluate", no_evaluation)
    again = tfd.collect(two_seeds, [8, 4], max_videos=8, progress=False)
    pd.testing.assert_frame_equal(again.table, table)  # "8" read back from CSV is still the string "8"
    summary = tables.summarize(again.table)
    assert summary.set_index(["model", "train_frames", "eval_frames"]).loc[("st", "8", 4), "seeds"] == 2
    cells = tables.study_table(again.table, frame_counts=(4, 8))
    st = cells[cells["model"] == "st"]
    assert st["eval_frames"].tolist() == [4, 8]  # each TSM counts as ST at its own T only


def test_the_ensemble_averages_its_members_probabilities(two_seeds):
    """The ensemble row is the accuracy of the mean of the ST models' softmax probabilities on the
    same clips (checked against the members run by hand), at the members' sum of GMACs."""
    import torch.nn.functional as F

    from ffnlib.datasets import MultiFrameClips
    from ffnlib.train import load_trained, open_split
    from ffnlib.transforms import normalize

    run = WorkbookRun(two_seeds[0])
    members = tfd.ensemble_members(run)
    assert [m.name for m in members] == ["st_4f", "st_8f"]
    result = tfd.evaluate_ensemble(run.root, members, [4, 8], max_videos=8, batch_size=8, progress=False)
    models = [load_trained(m.root)[0] for m in members]
    val = open_split(load_trained(members[0].root)[1], "validation", progress=False)
    clips = MultiFrameClips(val, [4, 8], train=False, frame_size=32, resize_size=36)
    for i, t in enumerate([4, 8]):
        batch = normalize(torch.stack([clips[k][i] for k in range(8)]))  # uint8 clips -> the models' input
        labels = torch.tensor([clips[k][-1] for k in range(8)])
        with torch.no_grad():
            mean = torch.stack([F.softmax(m(batch), dim=1) for m in models]).mean(0)
        expected = 100.0 * (mean.argmax(1) == labels).double().mean().item()
        assert result.table.set_index("eval_frames").at[t, "top1"] == pytest.approx(expected)
    row = result.table.iloc[0]
    assert (row["model"], row["train_frames"], row["model_name"]) == ("ensemble", "4/8", "ensemble_4-8")
    gmacs = tfd.with_gmacs(result.table.assign(model_dir=str(run.ensemble("ensemble_4-8").root)))
    members_gmacs = sum(tfd.clip_gmacs(m.root, [8])[8] for m in members)
    assert gmacs.set_index("eval_frames").at[8, "gmacs"] == pytest.approx(members_gmacs)
    assert tfd.ensemble_members(WorkbookRun(two_seeds[1])) == []  # one ST model: no ensemble


def test_a_checkpoint_replaced_by_other_weights_is_evaluated_again(two_seeds, tmp_path, monkeypatch):
    """The cache is keyed by the checkpoint's id (or, for a file without one, its bytes), never by its
    step and seed: other weights under the same step and seed are evaluated afresh."""
    model_dir = ModelRun(shutil.copytree(WorkbookRun(two_seeds[0]).trained_models()[0].root, tmp_path / "models" / "m"))
    for cache in model_dir.evaluation_cache("best"):
        cache.unlink(missing_ok=True)
    calls = []
    real = tfd.evaluate
    monkeypatch.setattr(tfd, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = tfd.evaluate_model_dir(model_dir, [4], max_videos=8, batch_size=8, progress=False)
    tfd.evaluate_model_dir(model_dir, [4], max_videos=8, batch_size=8, progress=False)
    assert len(calls) == 1  # read back from the cache
    state = load_checkpoint(model_dir.best)
    state["model"] = {k: -v if v.is_floating_point() else v for k, v in state["model"].items()}  # other weights
    save_checkpoint(model_dir.best, {k: v for k, v in state.items() if k != "checkpoint_id"})  # same step, seed
    again = tfd.evaluate_model_dir(model_dir, [4], max_videos=8, batch_size=8, progress=False)
    assert len(calls) == 2 and again.table["checkpoint_id"].item() != first.table["checkpoint_id"].item()
    state = load_checkpoint(model_dir.best)
    del state["checkpoint_id"]  # a checkpoint of an older format: keyed by a hash of its bytes
    torch.save(state, model_dir.best)
    old = tfd.evaluate_model_dir(model_dir, [4], max_videos=8, batch_size=8, progress=False)
    tfd.evaluate_model_dir(model_dir, [4], max_videos=8, batch_size=8, progress=False)
    assert len(calls) == 3 and old.table["checkpoint_id"].item().startswith("sha1:")


def test_collect_names_the_models_it_leaves_out(two_seeds, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(two_seeds[0], run)
    shutil.rmtree(WorkbookRun(run).model("st_8f").checkpoints)  # as if still training, or stopped early
    with caplog.at_level(logging.WARNING, logger="ffnlib.tfd"):
        table = tfd.collect([run], [4], max_videos=8, progress=False).table
    assert set(table["model_name"]) == {"ffn_4-8", "st_4f"} and "left out st_8f" in caplog.text


def test_collect_warns_when_a_seed_is_counted_twice(two_seeds, caplog):
    with caplog.at_level(logging.WARNING, logger="ffnlib.tfd"):
        tfd.collect([two_seeds[0], two_seeds[0]], [8], max_videos=8, progress=False)
    assert "same model and seed" in caplog.text


def test_collect_names_a_run_folder_without_models(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="empty: no trained model"):
        tfd.collect([tmp_path / "empty"], [4], progress=False)


def test_with_gmacs_counts_each_models_compute_at_each_t(two_seeds):
    table = tfd.collect(two_seeds[:1], [4, 8], max_videos=8, progress=False).table
    out = tfd.with_gmacs(table).set_index(["model_name", "eval_frames"])["gmacs"]
    assert out[("st_8f", 8)] == pytest.approx(flops("tsm_small", 8, frame_size=32, num_classes=8) / 1e9)
    assert out[("ffn_4-8", 4)] == pytest.approx(
        flops("ffn_small", 4, frame_size=32, num_classes=8, frame_counts=(4, 8)) / 1e9)
    assert np.isclose(out[("st_8f", 8)], 2 * out[("st_8f", 4)], rtol=0.01)  # linear in T
    assert out[("ffn_4-8", 8)] > out[("st_8f", 8)]  # adaconv
    assert out[("ensemble_4-8", 8)] == pytest.approx(out[("st_4f", 8)] + out[("st_8f", 8)])  # both members

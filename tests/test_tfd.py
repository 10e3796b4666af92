import logging
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import ffnlib.tfd as tfd
from ffnlib.models import flops
from ffnlib.runs import ModelRun, RunFolderError, WorkbookRun
from ffnlib.train import TrainConfig, fit, load_checkpoint, save_checkpoint

SIZES = dict(arch="small", frame_size=32, resize_size=36, num_workers=0, batch_size=4, lr=0.05, threads=1,
             deterministic=True, epochs=1, steps_per_epoch=2, eval_frames=[4], val_max_videos=8)


def fake_table(entries) -> pd.DataFrame:
    """A long TFD table from (model, train_frames, seed, {T: top1}) entries, as `collect` returns it."""
    rows = []
    for model, train_frames, seed, top1 in entries:
        name = f"{model}_{train_frames}f" if model in ("vanilla", "st") else model
        for t, value in top1.items():
            rows.append({"model": model, "train_frames": train_frames, "eval_frames": t, "top1": value,
                         "top5": min(100.0, value + 10), "n": 50, "seed": seed, "step": 10, "model_name": name,
                         "run_dir": f"runs/seed{seed}", "model_dir": f"runs/seed{seed}/models/{name}"})
    return pd.DataFrame(rows)


def study(seeds=(0, 1, 2)):
    """Vanilla at 16F, ST at 4F only, FFN; accuracies that differ by seed (+seed points)."""
    entries = []
    for s in seeds:
        entries += [("vanilla", "16", s, {4: 20.0 + s, 8: 40.0 + s, 16: 60.0 + s}),
                    ("st", "4", s, {4: 50.0 + s, 8: 45.0, 16: 30.0}),
                    ("ffn", "4/8/16", s, {4: 55.0 + s, 8: 60.0 + s, 16: 62.0 + s})]
    return fake_table(entries)


# ------------------------------------------------------------------------------------------ synthetic tables
def test_long_table_has_exactly_the_csv_columns_in_table_order():
    table = study(seeds=(1, 0)).sample(frac=1.0, random_state=0)  # shuffled rows
    long = tfd.long_table(table)
    assert list(long.columns) == ["model", "train_frames", "eval_frames", "top1", "top5", "n", "seed"]
    assert list(dict.fromkeys(long["model"])) == ["vanilla", "st", "ffn"]
    vanilla = long[long["model"] == "vanilla"]
    assert vanilla["eval_frames"].tolist() == [4, 4, 8, 8, 16, 16] and vanilla["seed"].tolist() == [0, 1] * 3


def test_summarize_gives_mean_std_and_number_of_seeds():
    summary = tfd.summarize(study()).set_index(["model", "train_frames", "eval_frames"])
    row = summary.loc[("vanilla", "16", 16)]
    assert row["top1_mean"] == pytest.approx(61.0) and row["top1_std"] == pytest.approx(1.0)  # 60, 61, 62
    assert row["seeds"] == 3 and row["n"] == 50
    assert summary.loc[("st", "4", 8), "top1_std"] == 0.0
    one = tfd.summarize(study(seeds=(0,))).set_index(["model", "train_frames", "eval_frames"])
    assert one.loc[("ffn", "4/8/16", 4), "seeds"] == 1 and math.isnan(one.loc[("ffn", "4/8/16", 4), "top1_std"])


def test_summarize_groups_cached_and_fresh_train_frames_alike():
    """A cached evaluation reads "16" back from CSV as the integer 16: both must land in one group."""
    table = study(seeds=(0, 1))
    table["train_frames"] = table["train_frames"].astype(object)
    table.loc[(table["model"] == "vanilla") & (table["seed"] == 1), "train_frames"] = 16
    summary = tfd.summarize(table)
    assert summary[summary["model"] == "vanilla"]["seeds"].tolist() == [2, 2, 2]


def test_table1_st_row_takes_the_model_trained_at_each_t():
    cells = tfd.table1(study())
    st = cells[(cells["model"] == "st") & (cells["source"] == "measured")].set_index("eval_frames")
    assert sorted(st.index) == [4, 16]  # no ST model trained at 8F
    assert st.at[4, "top1_mean"] == pytest.approx(51.0)  # st_4f at 4F, not at 8 or 16
    assert st.at[16, "top1_mean"] == pytest.approx(61.0)  # the vanilla model itself at 16F
    rows = list(dict.fromkeys(cells["row"]))
    assert rows[:3] == ["TSM trained at 16F (vanilla)", "ST (one TSM per T)", "FFN (4/8/16F)"]
    paper = cells[cells["source"] == "paper"]
    assert len(paper) == 9 and all(r.startswith("paper") for r in paper["row"])


def test_table1_markdown_layout():
    text = tfd.table1_markdown(study(), caption="built-in data")
    lines = text.splitlines()
    assert lines[0] == "built-in data"
    assert lines[2] == "| model | 4F | 8F | 16F |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert rows["TSM trained at 16F (vanilla)"] == (
        "| TSM trained at 16F (vanilla) | 21.00 ± 1.00 (3 seeds) | 41.00 ± 1.00 (3 seeds) | 61.00 ± 1.00 (3 seeds) |")
    assert rows["ST (one TSM per T)"].split(" | ")[2] == "–"  # no ST-8F model
    for model, name in tfd.PAPER_ROWS.items():
        values = tfd.PAPER_SSV2_TOP1[model]
        assert rows[f"paper, TSM-R50 on SSv2: {name}"].endswith(
            f"| {values[4]:.2f} | {values[8]:.2f} | {values[16]:.2f} |")
    assert "50 validation videos" in text and "published numbers" in text
    ordered = [line.split(" | ")[0] for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert ordered.index("| FFN (4/8/16F)") < min(i for i, r in enumerate(ordered) if "paper" in r)


def test_paper_numbers_are_the_reference_table():
    assert tfd.PAPER_SSV2_TOP1 == {"vanilla": {4: 31.52, 8: 51.55, 16: 61.02},
                                   "st": {4: 53.38, 8: 59.29, 16: 61.02},
                                   "ffn": {4: 56.07, 8: 61.86, 16: 63.61}}


def test_one_seed_markdown_has_plain_numbers_and_dashes_for_untrained_models():
    table = fake_table([("vanilla", "16", 0, {4: 12.5, 16: 37.5})])
    text = tfd.table1_markdown(table, paper=None)
    assert "| TSM trained at 16F (vanilla) | 12.50 | – | 37.50 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 1  # no ST model: no ST row; no paper rows asked for
    assert "published" not in text
    assert tfd.format_cell(float("nan"), float("nan"), 0) == "–"


def test_write_tables(tmp_path):
    csv, md = tfd.write_tables(study(seeds=(0, 1)), tmp_path / "run")
    back = pd.read_csv(csv)
    assert csv.name == "tfd_table.csv" and md.name == "tfd_table.md"
    assert list(back.columns) == tfd.LONG_COLUMNS and len(back) == 2 * 9
    assert "2 seeds" in md.read_text(encoding="utf-8")


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
    trained for two steps."""
    import torch

    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("tfd_runs")
    try:
        for seed in (0, 1):
            for recipe in ("vanilla", "ffn"):
                config = TrainConfig.from_dict(dict(SIZES, data_root=str(tiny_root), recipe=recipe, num_frames=8,
                                                    frame_counts=[4, 8], seed=seed))
                fit(config, root / f"seed{seed}" / "models" / config.model_name, progress=False)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    return [root / "seed0", root / "seed1"]


def test_collect_evaluates_every_model_of_every_run_then_reads_the_cache(two_seeds, monkeypatch):
    result = tfd.collect(two_seeds, [4, 8], max_videos=8, batch_size=8, progress=False)
    table = result.table
    assert len(table) == 2 * 2 * 2  # runs x models x T
    assert table["model"].tolist()[:4] == ["st"] * 4 and set(table["model"]) == {"st", "ffn"}
    assert set(table["train_frames"]) == {"8", "4/8"} and set(table["seed"]) == {0, 1}
    assert set(table["run_dir"]) == {str(d) for d in two_seeds} and (table["n"] == 8).all()
    per_class = result.per_class
    assert set(per_class.columns) >= {"model", "train_frames", "seed", "model_name", "label", "class_name", "top1"}
    assert len(per_class) == 8 * 8  # 4 model folders x 2 T x 8 classes

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated again: the cache was not used")

    monkeypatch.setattr(tfd, "evaluate", no_evaluation)
    again = tfd.collect(two_seeds, [8, 4], max_videos=8, progress=False)
    pd.testing.assert_frame_equal(again.table, table)  # "8" read back from CSV is still the string "8"
    summary = tfd.summarize(again.table)
    assert (summary["seeds"] == 2).all()
    cells = tfd.table1(again.table, frame_counts=(4, 8), paper=None)
    st = cells[cells["model"] == "st"]
    assert st["eval_frames"].tolist() == [8]  # the 8F TSM counts as ST at 8F only


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
    assert set(table["model_name"]) == {"ffn"} and "left out st_8f" in caplog.text


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
    out = tfd.with_gmacs(table).set_index(["model", "eval_frames"])["gmacs"]
    assert out[("st", 8)] == pytest.approx(flops("tsm_small", 8, frame_size=32, num_classes=8) / 1e9)
    assert out[("ffn", 4)] == pytest.approx(
        flops("ffn_small", 4, frame_size=32, num_classes=8, frame_counts=(4, 8)) / 1e9)
    assert np.isclose(out[("st", 8)], 2 * out[("st", 4)], rtol=0.01)  # linear in T
    assert out[("ffn", 8)] > out[("st", 8)]  # adaconv

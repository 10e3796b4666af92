"""The TFD tables (ffnlib.tables) on synthetic long tables, as `ffnlib.tfd.collect` returns them."""
import math

import pandas as pd
import pytest

from ffnlib import paper, tables


def fake_table(entries) -> pd.DataFrame:
    """A long TFD table from (model, train_frames, seed, {T: top1}[, variant[, arch]]) entries."""
    rows = []
    for model, train_frames, seed, top1, *rest in entries:
        variant, arch = rest[0] if rest else "", rest[1] if len(rest) > 1 else "small"
        name = f"{model}_{train_frames}f" if model in ("vanilla", "st") else model
        for t, value in top1.items():
            rows.append({"model": model, "train_frames": train_frames, "variant": variant, "data": "builtin",
                         "arch": arch, "eval_frames": t, "top1": value, "top5": min(100.0, value + 10), "n": 50,
                         "seed": seed, "step": 10, "model_name": name, "run_dir": f"runs/seed{seed}",
                         "model_dir": f"runs/seed{seed}/models/{name}"})
    return pd.DataFrame(rows)


def study(seeds=(0, 1, 2)):
    """Vanilla at 16F, ST at 4F only, FFN; accuracies that differ by seed (+seed points)."""
    entries = []
    for s in seeds:
        entries += [("vanilla", "16", s, {4: 20.0 + s, 8: 40.0 + s, 16: 60.0 + s}),
                    ("st", "4", s, {4: 50.0 + s, 8: 45.0, 16: 30.0}),
                    ("ffn", "4/8/16", s, {4: 55.0 + s, 8: 60.0 + s, 16: 62.0 + s})]
    return fake_table(entries)


# ------------------------------------------------------------------------------------------ long and summary
def test_long_table_has_exactly_the_csv_columns_in_table_order():
    table = study(seeds=(1, 0)).sample(frac=1.0, random_state=0)  # shuffled rows
    long = tables.long_table(table)
    assert list(long.columns) == tables.LONG_COLUMNS
    assert list(dict.fromkeys(long["model"])) == ["vanilla", "st", "ffn"]
    vanilla = long[long["model"] == "vanilla"]
    assert vanilla["eval_frames"].tolist() == [4, 4, 8, 8, 16, 16] and vanilla["seed"].tolist() == [0, 1] * 3


def test_summarize_gives_mean_std_and_number_of_seeds():
    summary = tables.summarize(study()).set_index(["model", "train_frames", "eval_frames"])
    row = summary.loc[("vanilla", "16", 16)]
    assert row["top1_mean"] == pytest.approx(61.0) and row["top1_std"] == pytest.approx(1.0)  # 60, 61, 62
    assert row["seeds"] == 3 and row["n"] == 50
    assert summary.loc[("st", "4", 8), "top1_std"] == 0.0
    one = tables.summarize(study(seeds=(0,))).set_index(["model", "train_frames", "eval_frames"])
    assert one.loc[("ffn", "4/8/16", 4), "seeds"] == 1 and math.isnan(one.loc[("ffn", "4/8/16", 4), "top1_std"])


def test_summarize_groups_cached_and_fresh_train_frames_alike():
    """A cached evaluation reads "16" back from CSV as the integer 16: both must land in one group."""
    table = study(seeds=(0, 1))
    table["train_frames"] = table["train_frames"].astype(object)
    table.loc[(table["model"] == "vanilla") & (table["seed"] == 1), "train_frames"] = 16
    summary = tables.summarize(table)
    assert summary[summary["model"] == "vanilla"]["seeds"].tolist() == [2, 2, 2]


def test_variants_and_backbones_are_never_averaged_as_seeds():
    """Mixed sampling at rho 0.5 and 0.75 (same model, same train_frames) and an FFN on two backbones
    are four models, each of one seed, not two models of two seeds."""
    table = fake_table([("mixed", "4/16", 0, {4: 10.0}, "mixup_prob=0.5"), ("mixed", "4/16", 0, {4: 30.0}, "mixup_prob=0.75"),
                        ("ffn", "4/8/16", 0, {4: 50.0}, "", "resnet18"), ("ffn", "4/8/16", 0, {4: 70.0}, "", "resnet50")])
    summary = tables.summarize(table)
    assert len(summary) == 4 and (summary["seeds"] == 1).all()
    text = tables.study_markdown(table, frame_counts=(4,))
    assert "| Mixed sampling (4/16F, ρ = 0.5) [builtin, small] | 10.00 |" in text
    assert "| Mixed sampling (4/16F, ρ = 0.75) [builtin, small] | 30.00 |" in text
    assert "| FFN (4/8/16F) [builtin, resnet18] | 50.00 |" in text


@pytest.mark.parametrize("model, train_frames, variant, label", [
    ("vanilla", "16", "", "TSM trained at 16F (vanilla)"),
    ("proportional", "4/16", "frame_probs=0.25/0.75", "Proportional sampling (4/16F, ϱ = 0.75)"),
    ("mixed", "4/16", "mixup_prob=0.5,mixup_alpha=0.2", "Mixed sampling (4/16F, ρ = 0.5, α = 0.2)"),
    ("finetune", "4", "init_from=vanilla_16f", "Fine-tuning to 4F (from vanilla_16f)"),
    ("ensemble", "4/16", "", "Ensemble of the ST models (4/16F)"),
    ("ffn", "4/8/12/16", "lam=0.5", "FFN (4/8/12/16F, λ = 0.5)"),
    ("ffn_no_sn_no_td", "4/8/16", "", "FFN w/o Specialized Normalization, w/o Temporal Distillation (4/8/16F)"),
])
def test_row_labels_say_the_model_and_its_variant_in_the_papers_terms(model, train_frames, variant, label):
    assert tables.row_label(model, train_frames, variant) == label


# ------------------------------------------------------------------------------------------ the study table
def test_study_table_st_row_takes_the_model_trained_at_each_t():
    cells = tables.study_table(study(), paper_rows=paper.SSV2_ROWS)
    st = cells[(cells["model"] == "st") & (cells["source"] == "measured")].set_index("eval_frames")
    assert sorted(st.index) == [4, 16]  # no ST model trained at 8F
    assert st.at[4, "top1_mean"] == pytest.approx(51.0)  # st_4f at 4F, not at 8 or 16
    assert st.at[16, "top1_mean"] == pytest.approx(61.0)  # the vanilla model itself at 16F
    rows = list(dict.fromkeys(cells["row"]))
    assert rows[:3] == ["TSM trained at 16F (vanilla)", "ST (one TSM per T)", "FFN (4/8/16F)"]
    paper_cells = cells[cells["source"] == "paper"]
    assert len(paper_cells) == 9 and all(r.startswith("paper") for r in paper_cells["row"])


def test_study_markdown_layout():
    text = tables.study_markdown(study(), paper_rows=paper.SSV2_ROWS, paper_source=paper.SSV2_SOURCE,
                                 caption="built-in data")
    lines = text.splitlines()
    assert lines[0] == "built-in data"
    assert lines[2] == "| model | 4F | 8F | 16F |" and lines[3] == "| --- | ---: | ---: | ---: |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert rows["TSM trained at 16F (vanilla)"] == (
        "| TSM trained at 16F (vanilla) | 21.00 ± 1.00 (3 seeds) | 41.00 ± 1.00 (3 seeds) | 61.00 ± 1.00 (3 seeds) |")
    assert rows["ST (one TSM per T)"].split(" | ")[2] == "–"  # no ST-8F model
    assert rows["paper: FFN (4/8/16F)"].endswith("| 56.07 | 61.86 | 63.61 |")
    assert "50 validation videos" in text and "published numbers" in text


def test_one_seed_markdown_has_plain_numbers_and_dashes_for_untrained_models():
    table = fake_table([("vanilla", "16", 0, {4: 12.5, 16: 37.5})])
    text = tables.study_markdown(table)
    assert "| TSM trained at 16F (vanilla) | 12.50 | – | 37.50 |" in text
    assert len([line for line in text.splitlines() if line.startswith("| ")][2:]) == 1
    assert "published" not in text
    assert tables.format_cell(float("nan"), float("nan"), 0) == "–"


def test_write_tables_puts_the_papers_rows_of_the_runs_data(tmp_path):
    csv, md = tables.write_tables(study(seeds=(0, 1)), tmp_path / "run")
    back = pd.read_csv(csv, keep_default_na=False)
    assert csv.name == "tfd_table.csv" and md.name == "tfd_table.md"
    assert list(back.columns) == tables.LONG_COLUMNS and len(back) == 2 * 9
    text = md.read_text(encoding="utf-8")
    assert "2 seeds" in text and "63.61" in text  # the built-in data: the SSv2 headline rows
    ssv1 = study(seeds=(0,)).assign(data="ssv1")
    _, md = tables.write_tables(ssv1, tmp_path / "ssv1")
    assert "| paper: TSM trained at 16F (vanilla) | 20.60 | 37.36 | 48.55 |" in md.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ the paper's tables
def paper_study():
    """Two seeds of the models of Table 1 and Table 4's w/o TD, on the built-in data."""
    entries = []
    for s in (0, 1):
        entries += [("vanilla", "16", s, {4: 20.0, 8: 40.0, 16: 60.0 + s}),
                    ("st", "4", s, {4: 50.0 + 2 * s}), ("st", "8", s, {8: 55.0}),
                    ("mixed", "4/16", s, {4: 30.0, 8: 45.0, 16: 59.0}, "mixup_prob=0.5"),
                    ("mixed", "4/16", s, {4: 33.0, 8: 46.0, 16: 58.0}, "mixup_prob=0.75"),
                    ("ensemble", "4/8/16", s, {4: 44.0, 8: 50.0, 16: 57.0}),
                    ("ffn", "4/8/16", s, {4: 56.0, 8: 58.0, 16: 61.0}),
                    ("ffn", "4/8/16", s, {4: 1.0, 8: 1.0, 16: 1.0}, "lam=0.5"),  # another lam: no Table 1 row
                    ("ffn_no_td", "4/8/16", s, {4: 52.0, 8: 57.0, 16: 60.0})]
    return fake_table(entries)


def test_paper_table_puts_each_measured_row_beside_the_papers_number():
    cells = tables.paper_table(paper_study(), "table1", data="builtin", arch="small").set_index(["row", "eval_frames"])
    assert cells.loc[("Mixed Sampling, ρ = 0.75", 4), "top1_mean"] == 33.0  # the rho=0.75 model, not rho=0.5
    assert cells.loc[("Mixed Sampling, ρ = 0.75", 4), "paper"] == 30.43
    st4 = cells.loc[("Separated Training (ST)", 4)]
    assert st4["top1_mean"] == 51.0 and st4["top1_std"] == pytest.approx(2 ** 0.5) and st4["seeds"] == 2
    assert cells.loc[("Separated Training (ST)", 16), "top1_mean"] == 60.5  # the vanilla model at 16F
    assert cells.loc[("FFN", 4), "top1_mean"] == 56.0  # lam=0.5 left out: another variant
    assert cells.loc[("Ensemble of the ST models", 8), "top1_mean"] == 50.0
    assert cells.loc[("Fine-tuning 16F → 4F", 4), "seeds"] == 0 and cells.loc[("Fine-tuning 16F → 4F", 4), "paper"] == 39.95
    assert cells.loc[("Fine-tuning 16F → 4F", 4), "models"] == "finetune_4f"
    other_arch = tables.paper_table(paper_study(), "table1", data="builtin", arch="resnet50")
    assert (other_arch["seeds"] == 0).all()


def test_paper_markdown_and_the_tables_that_have_a_measured_cell(tmp_path):
    table = paper_study()
    text = tables.paper_markdown(table, "table4", "builtin", "small")
    lines = text.splitlines()
    assert lines[2] == "| row | model folders | 4F | 8F | 16F | paper 4F | paper 8F | paper 16F | paper: params, GFLOPs |"
    two = " ± 0.00 (2 seeds)"
    assert (f"| w/o Temporal Distillation | `ffn_no_td` | 52.00{two} | 57.00{two} | 60.00{two} | 39.61 | 45.65 | 48.07 "
            "| – |") in lines
    assert "| w/o Weight Sharing | `ffn_no_ws` | – | – | – | 41.51 | 47.16 | 48.23 | 25.6M x 3 params |" in lines
    shown, others = tables.measured_tables(table, "builtin", "small")
    assert shown == ["table1", "table2", "table3", "table4", "anyframe"]  # no middle sequence, no R18/R101, no SSv2
    assert others == ["middle", "table5", "table9"]
    path = tables.write_paper_tables(table, tmp_path / "run", "builtin", "small")
    written = path.read_text(encoding="utf-8")
    assert written.count("(paper: TSM-ResNet50") == 5 and "Table 5: other depths" in written.split("Not measured")[1]
    chosen = tables.write_paper_tables(table, tmp_path / "run", "builtin", "small", names=["table4", "table5"])
    written = chosen.read_text(encoding="utf-8")  # only the tables asked for, measured or not
    assert written.count("(paper: TSM-ResNet50") == 1 and "**Table 4" in written and "**Table 1" not in written
    assert "Table 5: other depths" in written and "Table 9" not in written


def test_the_any_frame_table_gives_ffn_minus_st_seed_by_seed():
    table = fake_table([("st", "2", s, {2: 10.0 + s}) for s in (0, 1)]
                       + [("ffn", "4/8/16", s, {2: 13.0 + 3 * s}) for s in (0, 1)])
    cells = tables.paper_table(table, "anyframe").set_index(["row", "eval_frames"])
    diff = cells.loc[("FFN - ST (points)", 2)]
    assert diff["top1_mean"] == 4.0 and diff["top1_std"] == pytest.approx(2 ** 0.5) and diff["paper"] == 0.12

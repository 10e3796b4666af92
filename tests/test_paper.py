"""The paper's experiments (ffnlib.paper): each model is named as its config names it, each table row
names models that a profile's notebooks and a sweep file train, and the shipped sweep files are the
ones SWEEPS generates."""
import pytest

from ffnlib import paper, profiles
from ffnlib.paths import PROJECT_ROOT
from ffnlib.train import TrainConfig
from ffnlib.train.config import parse_overrides


@pytest.mark.parametrize("profile", ["demo", "smoke", "ssv1_r50", "ssv1_r18", "ssv2_r50"])
def test_each_model_trains_into_the_folder_of_its_name(profile):
    base = profiles.train_config(profiles.load_profile(profile))
    for name in paper.MODELS:
        assert paper.model_config(base, name).model_name == name
    with pytest.raises(KeyError, match="no model 'ffn_no_xx'"):
        paper.model_config(base, "ffn_no_xx")


def test_models_keep_the_profiles_other_settings():
    base = TrainConfig.from_dict({"arch": "small", "lam": 0.5, "frame_probs": [0.2, 0.8]})
    ffn = paper.model_config(base, "ffn_no_wa")
    assert (ffn.recipe, ffn.adaconv, ffn.lam, ffn.arch, ffn.model) == ("ffn", False, 0.5, "small", "ffn_no_wa")
    proportional = paper.model_config(base, "proportional")
    assert proportional.model_name == "proportional_p0.2-0.8"  # the profile's probabilities: another model


def test_the_papers_numbers_agree_across_its_tables():
    t = paper.TABLES
    row = {(name, r.label): r.paper for name, table in t.items() for r in table.rows}
    ffn = row[("table1", "FFN")]
    assert {k: row[("table2", "FFN(3): 4/8/16")][k] for k in (4, 8, 16)} == ffn == row[("table4", "FFN")]
    st = row[("table1", "Separated Training (ST)")]
    assert st[16] == row[("table1", "TSM trained at 16F")][16]  # ST at 16F is the vanilla model
    assert row[("table2", "ST")][12] == row[("anyframe", "ST (a model per T)")][12] == 47.71
    assert {k: row[("anyframe", "FFN")][k] for k in (4, 8, 12, 16)} == row[("table2", "FFN(3): 4/8/16")]
    for name, table in t.items():
        for r in table.rows:
            assert set(r.paper) <= set(table.frames), (name, r.label)
    assert paper.paper_rows("ssv1")[0] == {"vanilla": row[("table1", "TSM trained at 16F")], "st": st, "ffn": ffn}
    assert paper.paper_rows("kinetics")[0]["ffn"] == {4: 68.96, 8: 72.33, 16: 74.35}
    assert paper.paper_rows("builtin") == (paper.SSV2_ROWS, paper.SSV2_SOURCE)
    assert paper.paper_rows("video_list") == ({}, "")


def _sweep_models(sweep: paper.Sweep) -> set[tuple[str, str]]:
    """(profile, model folder) of every line of a shipped sweep file, read back from the file."""
    found = set()
    for line in (PROJECT_ROOT / "slurm" / "sweeps" / sweep.file).read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            _, config_path, _, *rest = words
            config = TrainConfig.from_yaml(PROJECT_ROOT / config_path, parse_overrides(rest[1::2]))
            found.add((config_path.split("/")[-1].removesuffix(".yaml"), config.model_name))
    return found


def test_the_shipped_sweep_files_are_the_generated_ones():
    for sweep in paper.SWEEPS.values():
        assert (PROJECT_ROOT / "slurm" / "sweeps" / sweep.file).read_text() == sweep.text(), (
            f"{sweep.file}: run python -m ffnlib.paper sweeps")


@pytest.mark.parametrize("name", paper.PAPER_TABLES)
def test_every_row_of_every_table_is_trained_by_a_sweep_and_by_the_profiles_notebooks(name):
    table = paper.TABLES[name]
    trained = set().union(*(_sweep_models(s) for s in paper.SWEEPS.values()))
    profile_of = {None: "ssv1_r50", "resnet18": "ssv1_r18", "resnet101": "ssv1_r101",
                  "ssv2": "ssv2_r50", "kinetics": "k400_r50", "hmdb51": "hmdb51_r50"}
    for row in table.rows:
        profile = profile_of[row.arch or row.data]
        for model in row.models:
            assert (profile, model) in trained, f"{name}, {row.label}: no sweep line trains {model} with {profile}"
        settings = profiles.load_profile(profile)
        by_notebook = {stem: {**profiles.declared_parameters(profiles.find_notebook(stem)), **settings["notebooks"].get(stem, {})}
                       for stem in ("04_train_tsm", "07_train_ffn")}
        base = profiles.train_config(settings)
        notebook_models = {base.model_name, *(base.replace(num_frames=t).model_name
                                              for t in by_notebook["04_train_tsm"]["st_frame_counts"]),
                           *(f"finetune_{t}f" for t in by_notebook["04_train_tsm"]["finetune_frame_counts"]),
                           *by_notebook["07_train_ffn"]["models"]}
        assert set(row.models) <= notebook_models, f"{name}, {row.label}: notebooks 04/07 of {profile} miss some"


def test_the_command_line_prints_the_budget_and_refuses_bad_input_in_one_line(capsys):
    paper.main(["budget", "50"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| sweep | models | PFLOP | GPU-hours at 50 TFLOP/s |"
    assert len(out) == 2 + len(paper.SWEEPS)
    for bad in (["budget", "fast"], [], ["tables"]):
        with pytest.raises(SystemExit) as stopped:
            paper.main(bad)
        assert stopped.value.code == 2
    with pytest.raises(SystemExit) as stopped:
        paper.main(["budget", "--help"])
    assert stopped.value.code == 0

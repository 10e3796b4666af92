import pytest

from ffnlib import profiles
from ffnlib.errors import ConfigError
from ffnlib.paths import PROJECT_ROOT
from ffnlib.train import TrainConfig
from notebook_files import write_notebook


def test_declared_parameters_survive_comments_with_equals_signs(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", 'run_dir = ""  # "" = default\nsteps = 0  # 0 = all\nsizes = [4, 8]')
    assert profiles.declared_parameters(nb) == {"run_dir": "", "steps": 0, "sizes": [4, 8]}


def test_parameters_cell_must_hold_flat_literals(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "import os\nx = os.getcwd()")
    with pytest.raises(ConfigError, match="only hold `name = literal`"):
        profiles.declared_parameters(nb)


@pytest.mark.parametrize("notebook", profiles.notebooks(), ids=lambda p: p.stem)
def test_every_notebook_parameter_has_one_rule_and_a_valid_default(notebook):
    declared = profiles.declared_parameters(notebook)
    assert declared["profile"] == "demo" and declared["interactive"] is True
    for name, value in declared.items():
        profiles.check_value(name, value, notebook.stem)  # a rule exists, and the default passes it


def test_the_notebooks_are_the_nine_phases_in_order():
    stems = [nb.stem for nb in profiles.notebooks()]
    assert stems[:3] == ["01_data", "02_sampling", "03_tsm"] and stems == sorted(stems) and len(stems) == 9
    assert profiles.find_notebook("4") == profiles.find_notebook("04_train_tsm")
    with pytest.raises(ConfigError, match="no notebook '10'"):
        profiles.find_notebook("10")


@pytest.mark.parametrize("name, value, expected", [
    ("split", "test", "one of"), ("eval_frames", [4, 4], "distinct positive"), ("eval_frames", [], "at least 1"),
    ("batch_size", 0, "positive"), ("device", "gpu", "cuda:N"), ("checkpoint", "bset", "one of"),
    ("models", ["vanilla_16f"], "ffn, ffn_no_sn"), ("models", ["ffn", "ffn"], "distinct"),
    ("paper_tables", ["table6"], "table1, table2"), ("interactive", 1, "True or False"), ("seed", -1, ">= 0"),
])
def test_a_bad_value_is_named_with_what_was_expected(name, value, expected):
    with pytest.raises(ConfigError, match=f"08: {name}=.*expected .*{expected}"):
        profiles.check_value(name, value, "08")
    with pytest.raises(ConfigError, match="has no rule"):
        profiles.check_value("not_a_parameter", 1, "08")


@pytest.mark.parametrize("text, message", [
    ("train: {epochs: 2}\nplots: {}\n", "unknown section"),
    ("train: {epoch: 2}\n", "unknown config key"),
    ("notebooks: {09_missing: {}}\n", "do not exist"),
    ("notebooks: {04_train_tsm: {not_a_parameter: 1}}\n", r"04_train_tsm does not declare \['not_a_parameter'\]"),
    ("train: [1, 2\n", "not YAML"),
    ("- train\n- notebooks\n", r"p.yaml: expected a mapping of sections \('train', 'notebooks'\), got list"),
])
def test_bad_profiles_are_refused(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as refused:
        profiles.load_profile(path)
    assert "\n" not in str(refused.value)  # one line, whatever the YAML parser says


def test_profiles_in_configs_are_valid():
    names = sorted(p.stem for p in (PROJECT_ROOT / "configs").glob("*.yaml"))
    assert {"demo", "smoke", "ssv2_r50"} <= set(names)
    for name in names:
        profile = profiles.load_profile(name)
        assert profile["name"] == name and isinstance(profiles.train_config(profile), TrainConfig)
    with pytest.raises(ConfigError, match="no such profile"):
        profiles.load_profile("demo2")


@pytest.mark.parametrize("name", ["demo", "smoke", "ssv2_r50"])
def test_every_training_setting_of_a_profile_says_what_it_is(name):
    """Each key of the train section carries a comment on its line (what it is, why this value)."""
    lines = (PROJECT_ROOT / "configs" / f"{name}.yaml").read_text().splitlines()
    start = lines.index("train:")
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    keys = [line for line in lines[start + 1:end] if line.strip() and not line.lstrip().startswith("#")]
    assert len(keys) == len(profiles.load_profile(name)["train"])  # one line per key: none missed
    bare = [line.split(":")[0].strip() for line in keys if " #" not in line]
    assert bare == [], f"configs/{name}.yaml: train keys without a comment: {bare}"


def namespace(stem, **changes):
    return {**profiles.declared_parameters(profiles.find_notebook(stem)), **changes}


def test_notebook_parameters_build_the_config_from_the_profile_and_the_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("FFN_SMOKE", raising=False)
    monkeypatch.setenv("FFN_RUNS_DIR", str(tmp_path))
    p = profiles.notebook_parameters("04_train_tsm", namespace("04_train_tsm", overrides={"seed": 3}))
    demo = profiles.train_config(profiles.load_profile("demo"))
    assert p.config == demo.replace(seed=3) and p.st_frame_counts == [4]
    assert p.run.root == (tmp_path / "demo").resolve()  # run_dir "": runs/<profile>, where make demo writes
    assert "profile **demo**" in repr(p) and "{'seed': 3}" in repr(p)
    with pytest.raises(ConfigError, match=r"04_train_tsm: profile demo, overrides \{'epoch': 3\}: unknown config key"):
        profiles.notebook_parameters("04_train_tsm", namespace("04_train_tsm", overrides={"epoch": 3}))
    with pytest.raises(ConfigError, match="04_train_tsm: st_frame_counts=\\[0\\]"):
        profiles.notebook_parameters("04_train_tsm", namespace("04_train_tsm", st_frame_counts=[0]))


def test_smoke_mode_says_what_it_changes(monkeypatch):
    monkeypatch.setenv("FFN_SMOKE", "1")
    p = profiles.notebook_parameters("01_data", namespace("01_data"))
    smoke = profiles.load_profile("smoke")
    assert p.profile == "smoke" and p.config == profiles.train_config(smoke)
    assert p.num_videos_shown == smoke["notebooks"]["01_data"]["num_videos_shown"]
    text = repr(p)
    assert "FFN_SMOKE=1: a plumbing check, not a result" in text
    assert "`num_videos_shown` 6 → 3" in text and "`config.batch_size` 32 → 8" in text
    monkeypatch.setenv("FFN_SMOKE", "0")
    assert profiles.notebook_parameters("01_data", namespace("01_data")).profile == "demo"
    assert "plumbing check" not in repr(profiles.notebook_parameters("01_data", namespace("01_data")))
    chosen = profiles.notebook_parameters("01_data", namespace("01_data", profile="smoke"))  # by name, as reproduce does
    assert "profile **smoke**" in repr(chosen) and "**A plumbing check, not a result**" in repr(chosen)

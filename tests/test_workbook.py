import dataclasses
import subprocess
import sys

import nbformat
import pandas as pd
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from ffnlib import workbook
from ffnlib.paths import PROJECT_ROOT
from ffnlib.train import REQUEUE_EXIT_CODE, TrainConfig

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # an output that needs a widget front-end


def write_notebook(path, params_source, *cells):
    params = new_code_cell(params_source)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_declared_parameters_survive_comments_with_equals_signs(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", 'run_dir = ""  # "" = default\nsteps = 0  # 0 = all\nsizes = [4, 8]')
    assert workbook.declared_parameters(nb) == {"run_dir": "", "steps": 0, "sizes": [4, 8]}


def test_parameters_cell_must_hold_flat_literals(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "import os\nx = os.getcwd()")
    with pytest.raises(workbook.WorkbookError, match="only hold `name = literal`"):
        workbook.declared_parameters(nb)


def test_every_workbook_notebook_declares_flat_parameters():
    stems = [nb.stem for nb in workbook.notebooks()]
    assert stems[:3] == ["01_data", "02_sampling", "03_tsm"] and stems == sorted(stems)
    for nb in workbook.notebooks():
        assert workbook.declared_parameters(nb)


def test_run_injects_parameters_records_them_and_keeps_the_executed_notebook(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", 'run_dir = ""\nsize = 1',
                        "from pathlib import Path\nPath(run_dir, 'out.txt').write_text(str(size * 2))")
    out = workbook.run_notebook(nb, tmp_path / "run", {"size": 21})
    assert out == tmp_path / "run" / "n.ipynb" and out.exists()
    assert (tmp_path / "run" / "out.txt").read_text() == "42"
    assert yaml.safe_load((tmp_path / "run" / "n.params.yaml").read_text()) == {
        "size": 21, "run_dir": str(tmp_path / "run")}


def test_headless_runs_turn_widgets_off_where_a_notebook_declares_them(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", 'run_dir = ""\ninteractive = True',
                        "from pathlib import Path\nPath(run_dir, 'out.txt').write_text(str(interactive))")
    workbook.run_notebook(nb, tmp_path / "run")
    assert (tmp_path / "run" / "out.txt").read_text() == "False"
    workbook.run_notebook(nb, tmp_path / "again", {"interactive": True})  # asked for explicitly: kept
    assert (tmp_path / "again" / "out.txt").read_text() == "True"
    widget_notebooks = [nb.stem for nb in workbook.notebooks() if "widgets.interact" in nb.read_text()]
    assert widget_notebooks == ["02_sampling", "08_tfd_table"]
    for nb in workbook.notebooks():  # every notebook: each draws progress bars (tqdm's widgets in Jupyter)
        assert workbook.declared_parameters(nb)["interactive"] is True, nb.stem


def test_unknown_parameter_is_refused_by_name(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "size = 1", "pass")
    with pytest.raises(workbook.WorkbookError, match=r"unknown parameter\(s\) \['szie'\]"):
        workbook.run_notebook(nb, tmp_path / "run", {"szie": 2})


def test_failing_cell_is_named(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "size = 1", "x = 1", "raise ValueError('bad size')")
    with pytest.raises(workbook.NotebookFailed, match=r"n.ipynb: cell 3 failed: ValueError: bad size") as info:
        workbook.run_notebook(nb, tmp_path / "run")
    assert info.value.output.exists()


def test_preempted_training_exits_for_requeue(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "size = 1",
                        "from ffnlib.train import Preempted\nraise Preempted('signal')")
    done = subprocess.run([sys.executable, "-m", "ffnlib.workbook", "run", str(nb), "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == REQUEUE_EXIT_CODE, done.stderr


@pytest.mark.parametrize("text, message", [
    ("train: {epochs: 2}\nplots: {}\n", "unknown section"),
    ("train: {epoch: 2}\n", "unknown config key"),
    ("notebooks: {09_missing: {}}\n", "do not exist"),
])
def test_bad_profiles_are_refused(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises((workbook.WorkbookError, ValueError), match=message):
        workbook.load_profile(path)


def test_profile_section_for_a_notebook_must_be_declared_by_it(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("train: {epochs: 2, lr: 0.5}\nnotebooks: {04_train_tsm: {not_a_parameter: 1}}\n")
    profile = workbook.load_profile(path)
    nb = workbook.find_notebook("04")
    with pytest.raises(workbook.WorkbookError, match="does not declare \\['not_a_parameter'\\]"):
        workbook.profile_parameters(profile, nb, set(workbook.declared_parameters(nb)))


def test_profiles_in_configs_are_valid():
    for name in ("smoke", "demo", "ssv2_r50"):
        path = workbook.profile_path(name)
        if path.exists():
            profile = workbook.load_profile(name)
            for nb in workbook.notebooks():
                workbook.profile_parameters(profile, nb, set(workbook.declared_parameters(nb)))


def test_notebook_defaults_are_the_demo_profile():
    """`make demo` injects configs/demo.yaml; a notebook opened in JupyterLab runs its own defaults.
    Both must be the same study, so every value the demo profile gives a notebook is its default."""
    profile = workbook.load_profile("demo")
    for nb in workbook.notebooks():
        declared = workbook.declared_parameters(nb)
        given = workbook.profile_parameters(profile, nb, set(declared))
        differing = {k: (declared[k], v) for k, v in given.items() if declared[k] != v}
        assert not differing, f"{nb.stem}: defaults differ from configs/demo.yaml: {differing}"


# What each training notebook decides itself rather than taking from a profile's train section.
SET_BY_THE_NOTEBOOK = {"04_train_tsm": {"recipe", "frame_counts", "frame_probs", "lam"},
                       "07_train_ffn": {"recipe", "num_frames"}}


@pytest.mark.parametrize("profile_name", ["demo", "smoke", "ssv2_r50"])
def test_training_notebooks_declare_every_train_setting_of_a_profile(profile_name):
    """A train key the notebooks do not declare would be dropped without a word (the notebook would
    train with TrainConfig's default instead), so each training notebook declares all of them."""
    profile = workbook.load_profile(profile_name)
    for stem, own in SET_BY_THE_NOTEBOOK.items():
        declared = set(workbook.declared_parameters(workbook.find_notebook(stem)))
        missing = sorted(set(profile["train"]) - declared - own)
        assert not missing, f"{stem} does not declare {missing}, which configs/{profile_name}.yaml sets"


def test_a_relative_run_dir_is_taken_from_the_project_root(tmp_path, monkeypatch):
    """Under Jupyter and papermill the working folder is notebooks/: `runs/x` must still mean the
    project's runs/x, as notebook 08's `run_dirs` does."""
    monkeypatch.chdir(tmp_path)
    assert workbook.resolve_run_dir("runs/x") == (PROJECT_ROOT / "runs" / "x").resolve()
    assert workbook.resolve_run_dir(str(tmp_path / "abs")) == tmp_path / "abs"


def test_reproduce_refuses_an_override_no_notebook_declares(tmp_path):
    with pytest.raises(workbook.WorkbookError, match=r"no notebook declares \['sede'\]"):
        workbook.reproduce("smoke", tmp_path / "run", only=["01"], overrides={"sede": 1})


def test_reproduce_runs_the_whole_workbook_into_one_run_folder(tmp_path, monkeypatch):
    """The main job's path at smoke size: 01..08 headless, ending in the TFD table and its figures."""
    monkeypatch.setenv("FFN_RUNS_DIR", str(tmp_path / "runs"))
    out = tmp_path / "runs" / "smoke"
    timings = workbook.reproduce("smoke", out, overrides={"seed": 3})
    stems = [nb.stem for nb in workbook.notebooks()]
    assert list(timings) == [*stems, "total"]
    for stem in stems:
        assert (out / f"{stem}.ipynb").exists()
        params = yaml.safe_load((out / f"{stem}.params.yaml").read_text())
        assert params.get("run_dir") in (None, str(out.resolve()))
    assert {p.name for p in (out / "models").iterdir()} == {"vanilla_16f", "st_4f", "ffn", "proportional", "mixed"}
    table = pd.read_csv(out / "tfd_table.csv")
    assert list(table.columns) == ["model", "train_frames", "eval_frames", "top1", "top5", "n", "seed"]
    assert set(table["model"]) == {"vanilla", "st", "ffn", "proportional", "mixed"} and set(table["seed"]) == {3}
    markdown = (out / "tfd_table.md").read_text()
    assert "56.07" in markdown and "61.02" in markdown  # the paper's rows beside ours
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == [
        "accuracy_vs_frames.png", "accuracy_vs_gflops.png", "per_class_tfd.png"]
    for stem in stems:  # no widget, so no progress bar saved at "0%" in the executed notebooks
        outputs = [o for c in nbformat.read(out / f"{stem}.ipynb", as_version=4).cells for o in c.get("outputs", [])]
        assert not [o for o in outputs if WIDGET_VIEW in o.get("data", {})], stem


@pytest.mark.parametrize("profile_name", ["demo", "smoke", "ssv2_r50"])
def test_a_profile_trains_the_same_model_in_the_notebooks_and_on_the_command_line(profile_name):
    """`python -m ffnlib.train --config configs/<profile>.yaml` and the training notebooks run with the
    same profile must train the same model: a setting the profile leaves out takes TrainConfig's
    default on the command line and the notebook's default in a notebook, so the two must agree.
    `threads` is left out: it says how to run (the notebooks use 2 threads, the CLI torch's choice)."""
    profile = workbook.load_profile(profile_name)
    cli = TrainConfig.from_dict(profile["train"])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for stem, own in SET_BY_THE_NOTEBOOK.items():
        nb = workbook.find_notebook(stem)
        declared = workbook.declared_parameters(nb)
        given = {**declared, **workbook.profile_parameters(profile, nb, set(declared))}
        differing = {k: (v, getattr(cli, k)) for k, v in given.items()
                     if k in fields - own - {"threads"} and _plain(v) != _plain(getattr(cli, k))}
        assert not differing, f"{stem} (notebook, CLI) with configs/{profile_name}.yaml: {differing}"


def _plain(value):
    """Compare a notebook literal with a TrainConfig field: tuples as lists, dataclasses as dicts."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

import json
import subprocess
import sys

import nbformat
import pytest
import yaml

from ffnlib import workbook
from ffnlib.errors import ConfigError
from ffnlib.train import REQUEUE_EXIT_CODE
from notebook_files import write_notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # an output that needs a widget front-end


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ffnlib.workbook", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_run_injects_parameters_records_them_and_keeps_the_executed_notebook(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", 'run_dir = ""\nseed = 1',
                        "from pathlib import Path\nPath(run_dir, 'out.txt').write_text(str(seed * 2))")
    out = workbook.run_notebook(nb, tmp_path / "run", {"seed": 21})
    assert out == tmp_path / "run" / "n.ipynb" and out.exists()
    assert (tmp_path / "run" / "out.txt").read_text() == "42"
    assert yaml.safe_load((tmp_path / "run" / "n.params.yaml").read_text()) == {
        "seed": 21, "run_dir": str(tmp_path / "run")}


@pytest.mark.slow
def test_headless_runs_turn_widgets_off_where_a_notebook_declares_them(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", 'run_dir = ""\ninteractive = True',
                        "from pathlib import Path\nPath(run_dir, 'out.txt').write_text(str(interactive))")
    workbook.run_notebook(nb, tmp_path / "run")
    assert (tmp_path / "run" / "out.txt").read_text() == "False"
    workbook.run_notebook(nb, tmp_path / "again", {"interactive": True})  # asked for explicitly: kept
    assert (tmp_path / "again" / "out.txt").read_text() == "True"


def test_unknown_or_bad_parameters_are_refused_by_name_before_running(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "seed = 1", "pass")
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['sede'\]"):
        workbook.run_notebook(nb, tmp_path / "run", {"sede": 2})
    with pytest.raises(ConfigError, match=r"seed=-2: expected an integer >= 0"):
        workbook.run_notebook(nb, tmp_path / "run", {"seed": -2})
    assert not (tmp_path / "run" / "n.ipynb").exists()


@pytest.mark.slow
def test_failing_cell_is_named(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "seed = 1", "x = 1", "raise ValueError('bad size')")
    with pytest.raises(workbook.NotebookFailed, match=r"n.ipynb: cell 3 failed: ValueError: bad size") as info:
        workbook.run_notebook(nb, tmp_path / "run")
    assert info.value.output.exists() and not info.value.user_error


@pytest.mark.slow
def test_a_preempted_training_cell_exits_for_requeue(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "seed = 1", "from ffnlib.train import Preempted\nraise Preempted('signal')")
    done = cli("run", nb, "--run-dir", tmp_path / "run")
    assert done.returncode == REQUEUE_EXIT_CODE, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: n.ipynb: cell 2 failed: Preempted: signal")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("ename, code", [("Preempted", REQUEUE_EXIT_CODE), ("RunInUse", 2), ("DatasetError", 2),
                                         ("VideoDecodeError", 2), ("KeyError", 1)])
def test_a_failed_cell_exits_for_requeue_on_a_user_error_or_on_a_bug(tmp_path, monkeypatch, capsys, ename, code):
    def failing(notebook, *_args, **_kwargs):
        raise workbook.NotebookFailed(notebook, 7, ename, "what went wrong\nsecond line", tmp_path / "out.ipynb")

    monkeypatch.setattr(workbook, "run_notebook", failing)
    assert workbook.main(["run", "04", "--run-dir", str(tmp_path / "run")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: 04_train_tsm.ipynb: cell 7 failed: {ename}: what went wrong second line "
                   f"(executed notebook: {tmp_path / 'out.ipynb'})"]


@pytest.mark.parametrize("args, message", [
    (["reproduce", "--profile", "demo2"], "demo2.yaml: no such profile"),
    (["reproduce", "--profile", "smoke", "--set", "epoch=3"], "unknown config key(s) ['epoch']"),
    (["reproduce", "--profile", "smoke", "-p", "sede", "1"], "no notebook declares ['sede']"),
    (["run", "04", "--run-dir", "x", "-f", "nope.yaml"], "nope.yaml: cannot read a YAML file"),
    (["run", "10", "--run-dir", "x"], "no notebook '10'"),
    (["run", "04", "--run-dir", "x", "-p", "st_frame_counts", "[4,"], "the value is not YAML"),
    (["run", "04", "--run-dir", "x", "-p", "st_frame_counts", "[0]"], "st_frame_counts=[0]: expected"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, args, message):
    assert workbook.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_training_overrides_reach_every_notebook_that_declares_overrides(tmp_path):
    profile = workbook.profiles.load_profile("smoke")
    nb04 = workbook.profiles.find_notebook("04")
    params = workbook.notebook_parameters(nb04, profile, {"overrides": {"lr": 0.5}}, {"seed": 3})
    assert params["profile"] == "smoke" and params["overrides"] == {"lr": 0.5, "seed": 3}
    nb01 = workbook.profiles.find_notebook("01")
    assert workbook.notebook_parameters(nb01, profile, {}, {"seed": 3})["num_videos_shown"] == 3


@pytest.mark.slow
def test_reproduce_runs_notebooks_into_one_run_folder_without_widget_output(tmp_path, monkeypatch):
    """The main job's path, on the notebook with widgets (02): parameters recorded, timings written,
    and no widget output saved (a viewer without the widget state shows progress bars as "0%")."""
    monkeypatch.setenv("FFN_RUNS_DIR", str(tmp_path / "runs"))
    out = tmp_path / "runs" / "smoke"
    timings = workbook.reproduce("smoke", out, only=["02"], overrides={"seed": 3})
    assert list(timings) == ["02_sampling", "total"]
    assert json.loads((out / "reproduce.json").read_text())["seconds"] == timings
    params = yaml.safe_load((out / "02_sampling.params.yaml").read_text())
    assert params["profile"] == "smoke" and params["interactive"] is False and params["overrides"] == {"seed": 3}
    outputs = [o for c in nbformat.read(out / "02_sampling.ipynb", as_version=4).cells for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if WIDGET_VIEW in o.get("data", {})]

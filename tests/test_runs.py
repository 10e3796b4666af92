"""Run folders: paths, the lock, metrics lines that survive a crash."""
import json
import logging
import os
import subprocess
import sys

import pytest

from ffnlib.runs import ModelRun, RunFolderError, RunInUse, WorkbookRun, resolve_run_dir, resolve_run_dirs

HOLD_LOCK = """
import sys, time
from ffnlib.runs import ModelRun
with ModelRun(sys.argv[1]).lock("training"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_paths_of_a_workbook_run_and_its_models(tmp_path):
    run = WorkbookRun(tmp_path / "demo")
    model = run.model("ffn")
    assert model.root == tmp_path / "demo" / "models" / "ffn" and model.run_dir == run.root
    assert model.checkpoint("best") == model.best == model.root / "checkpoints" / "best.pt"
    assert model.epoch(3).name == "epoch_3.pt" and model.evaluation_cache("final")[0].name == "eval_final.csv"
    assert os.fspath(model) == str(model.root)  # goes wherever a model_dir path does
    assert (run.table_csv.name, run.figures.name) == ("tfd_table.csv", "figures")
    for bad in ("", "a/b", ".."):
        with pytest.raises(RunFolderError, match="expected a folder name"):
            run.model(bad)
    with pytest.raises(RunFolderError, match="got 'bset'"):
        model.checkpoint("bset")


def test_trained_models_are_those_holding_the_checkpoint(tmp_path):
    run = WorkbookRun(tmp_path)
    for name in ("b", "a", "c"):
        run.model(name).checkpoints.mkdir(parents=True)
    for name in ("a", "b"):
        run.model(name).best.write_bytes(b"x")
    assert [m.name for m in run.trained_models()] == ["a", "b"] and run.trained_models("final") == []


def test_a_relative_run_dir_is_taken_from_the_project_root(tmp_path, monkeypatch):
    """Under Jupyter and papermill the working folder is notebooks/: `runs/x` must still mean the
    project's runs/x; "" means runs/<profile> (where reproduce --profile writes)."""
    from ffnlib.paths import PROJECT_ROOT

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FFN_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert resolve_run_dir("runs/x") == (PROJECT_ROOT / "runs" / "x").resolve()
    assert resolve_run_dir(str(tmp_path / "abs")) == tmp_path / "abs"
    assert resolve_run_dir("", "smoke") == tmp_path / "elsewhere" / "smoke"


def test_resolve_run_dirs(tmp_path):
    for name in ("seed0", "seed1", "other"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    default = tmp_path / "runs" / "other"
    assert resolve_run_dirs([], default, root=tmp_path) == [default]
    with pytest.raises(RunFolderError, match="run_dir: no such run folder"):
        resolve_run_dirs([], tmp_path / "runs" / "workbook", root=tmp_path)
    assert resolve_run_dirs(["runs/seed*", "runs/seed0"], default, root=tmp_path) == [
        tmp_path / "runs" / "seed0", tmp_path / "runs" / "seed1"]  # from the root, globbed, once each
    with pytest.raises(RunFolderError, match="runs/nope"):
        resolve_run_dirs(["runs/nope"], default, root=tmp_path)
    with pytest.raises(RunFolderError, match="no folder matches"):
        resolve_run_dirs(["runs/x*"], default, root=tmp_path)
    with pytest.raises(RunFolderError, match="list of folders"):
        resolve_run_dirs("runs/seed0", default, root=tmp_path)


def test_a_second_process_is_refused_the_lock_naming_the_holder_and_a_dead_holder_blocks_nobody(tmp_path):
    model = ModelRun(tmp_path / "ffn")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(model.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUse, match=rf"ffn is in use by pid {holder.pid} on \S+ \(training, since"):
            with model.lock("evaluation"):
                pass
    finally:
        holder.kill()  # as kill -9: the kernel releases the lock
        holder.wait()
    with model.lock("evaluation"):
        assert "(evaluation," in model.lock_file.read_text()


def test_a_model_folder_must_be_a_writable_folder(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="is a file, not a model folder"):
        ModelRun(tmp_path / "file").check_usable()
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(RunFolderError, match="cannot write in"):
            ModelRun(tmp_path / "ro" / "m").check_usable()


def test_metrics_lines_are_appended_and_a_torn_last_line_is_dropped_and_repaired(tmp_path, caplog):
    model = ModelRun(tmp_path / "m")
    model.append_metrics({"epoch": 1, "loss": 0.5})
    model.metrics.write_text(model.metrics.read_text() + '{"epoch": 2, "lo')  # a crash mid-line
    with caplog.at_level(logging.WARNING, logger="ffnlib.runs"):
        assert model.read_metrics() == [{"epoch": 1, "loss": 0.5}]
    assert "metrics.jsonl: dropping its torn last line 2" in caplog.text
    model.append_metrics({"epoch": 2, "loss": 0.4})
    assert [json.loads(line)["epoch"] for line in model.metrics.read_text().splitlines()] == [1, 2]
    model.metrics.write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(RunFolderError, match=r"metrics.jsonl, line 2: not a JSON object"):
        model.read_metrics()

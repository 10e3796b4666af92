import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import ffnlib.train.loop as loop_module
import ffnlib.train.step as step_module
from ffnlib.datasets import SSv2
from ffnlib.paths import leftover_temporaries
from ffnlib.runs import ModelRun, RunFolderError
from ffnlib.train.optim import make_optimizer
from ffnlib.train import (REQUEUE_EXIT_CODE, CheckpointError, NonFiniteLoss, Preempted, TrainConfig, build_model,
                          fit, load_checkpoint, load_model_state, load_trained, save_checkpoint, train_step,
                          train_view)

TIMING = ("seconds", "clips_per_s", "frames_per_s")


def tiny(root, **changes) -> TrainConfig:
    """A config that trains the small network for a few seconds on the tiny dataset."""
    values = dict(data_root=str(root), arch="small", frame_size=32, resize_size=36, num_workers=0, epochs=2,
                  batch_size=4, steps_per_epoch=6, lr=0.05, num_frames=8, frame_counts=[4, 8],
                  eval_frames=[4, 8], val_max_videos=8, threads=1, deterministic=True)
    return TrainConfig.from_dict({**values, **changes})


def without_timing(history):
    return [{k: v for k, v in line.items() if k not in TIMING} for line in history]


def run_cli(config: TrainConfig, run_dir: Path, *extra, wait=True):
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(config.to_yaml())
    cmd = [sys.executable, "-m", "ffnlib.train", "--config", str(path), "--model-dir", str(run_dir),
           "--no-progress", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def wait_for(predicate, proc, timeout=120):
    start = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before the kill point:\n{proc.stdout.read()}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.05)


@pytest.mark.parametrize("recipe", ["vanilla", "ffn", "proportional", "mixed"])
def test_each_recipe_fills_its_run_folder(tiny_root, tmp_path, recipe, torch_state):
    config = tiny(tiny_root, recipe=recipe, epochs=1, steps_per_epoch=3, mixup_prob=1.0)
    result = fit(config, tmp_path / "run", progress=False)
    run = ModelRun(tmp_path / "run")
    assert TrainConfig.from_yaml(run.config) == config
    (line,) = run.read_metrics()
    assert line["epoch"] == 1 and line["step"] == 3
    for key in ("lr", "train_loss", "train_top1", "val_top1_4", "val_top5_8", *TIMING):
        assert key in line
    expected_parts = {"vanilla": ["train_ce"], "proportional": ["train_ce"], "ffn": ["train_ce", "train_kl_4"],
                      "mixed": ["train_ce", "train_mixup"]}[recipe]
    assert all(part in line for part in expected_parts)
    if recipe == "mixed":
        assert line["train_mixup"] == 1.0  # mixup_prob 1: every step mixed
    for path in (run.last, run.best, run.final):
        state = torch.load(path, weights_only=True)  # tensors and plain types only
        assert state["config"] == config.to_dict() and state["step"] == 3
    assert not run.pid.exists()
    model, saved = load_trained(run.root, "final")
    assert saved == config
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["vanilla", "ffn"])
def test_tiny_model_overfits_a_tiny_set(tiny_root, recipe, torch_state):
    """The training step (forward, loss, backward, clipping, SGD) drives the loss down on one fixed batch."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = tiny(tiny_root, recipe=recipe, dropout=0.0, lr=0.05, weight_decay=0.0, frame_counts=[4, 8])
    view = train_view(config, SSv2(tiny_root, "train"))
    view.set_epoch(0)
    batch = torch.utils.data.default_collate([view[i] for i in range(8)])  # one fixed batch of 8 videos
    model = build_model(config, num_classes=8)
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = [train_step(model, optimizer, scaler, batch, config, torch.device("cpu"), None)[0].item()
              for _ in range(60)]
    assert losses[-1] < 0.1 * losses[0], losses[::10]


def test_completed_run_is_not_trained_again(tiny_root, tmp_path, torch_state):
    config = tiny(tiny_root, epochs=1, steps_per_epoch=2)
    first = fit(config, tmp_path / "run", progress=False)
    mtime = ModelRun(tmp_path / "run").final.stat().st_mtime_ns
    again = fit(config, tmp_path / "run", progress=False)
    assert again.history == first.history
    assert ModelRun(tmp_path / "run").final.stat().st_mtime_ns == mtime


def test_resuming_with_another_model_config_is_refused(tiny_root, tmp_path, torch_state):
    fit(tiny(tiny_root, epochs=1, steps_per_epoch=2), tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match=r"arch: checkpoint 'small' vs config 'medium'"):
        fit(tiny(tiny_root, epochs=2, steps_per_epoch=2, arch="medium"), tmp_path / "run", progress=False)


def test_checkpoint_into_the_wrong_model_names_the_mismatch(tiny_root, tmp_path, torch_state):
    fit(tiny(tiny_root, epochs=1, steps_per_epoch=1), tmp_path / "run", progress=False)
    state = load_checkpoint(ModelRun(tmp_path / "run").final)
    other = build_model(tiny(tiny_root, recipe="ffn"), num_classes=8)
    with pytest.raises(CheckpointError, match="does not fit the model FFNResNet: missing"):
        load_model_state(other, state["model"], "final.pt")
    fewer_classes = build_model(tiny(tiny_root), num_classes=5)
    with pytest.raises(CheckpointError, match=r"shape mismatch \['fc.bias: checkpoint \(8,\) vs model \(5,\)'"):
        load_model_state(fewer_classes, state["model"], "final.pt")


@pytest.mark.parametrize("mmap", [False, True])
def test_unreadable_checkpoint_is_named(tmp_path, mmap):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt: not a readable checkpoint"):
        load_checkpoint(bad, mmap=mmap)


def test_a_checkpoint_read_lazily_holds_the_same_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "step": 7})
    eager, lazy = load_checkpoint(tmp_path / "c.pt"), load_checkpoint(tmp_path / "c.pt", mmap=True)
    assert lazy["step"] == eager["step"] == 7
    for name, tensor in eager["model"].items():
        torch.testing.assert_close(lazy["model"][name], tensor)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_root, tmp_path, monkeypatch, torch_state):
    calls = {"n": 0}
    real = step_module.compute_loss

    def poisoned(*args, **kwargs):
        loss, *rest = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), *rest

    monkeypatch.setattr(step_module, "compute_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss \(nan\) in .* at epoch 1, step 3"):
        fit(tiny(tiny_root, save_every_steps=1), tmp_path / "run", progress=False)
    state = load_checkpoint(ModelRun(tmp_path / "run").last)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values()
                                      if v.is_floating_point())


@pytest.fixture(scope="module")
def reference_run(tiny_root, tmp_path_factory):
    """An uninterrupted run, through the command line, to compare interrupted runs with."""
    config = tiny(tiny_root, save_every_steps=2)
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    done = run_cli(config, run_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    return config, run_dir


def assert_same_run(run_dir, reference_dir):
    """The same metrics lines (timing apart), and the same weights in final.pt and best.pt."""
    assert without_timing(ModelRun(run_dir).read_metrics()) == without_timing(ModelRun(reference_dir).read_metrics())
    for name in ("final", "best"):
        ours = load_checkpoint(ModelRun(run_dir).checkpoint(name))
        ref = load_checkpoint(ModelRun(reference_dir).checkpoint(name))
        assert ours["step"] == ref["step"], name
        for key in ref["model"]:
            assert torch.equal(ours["model"][key], ref["model"][key]), (name, key)


@pytest.mark.parametrize("kill_at_step", [3, 9])  # mid-epoch 1 (after a step checkpoint), mid-epoch 2
@pytest.mark.slow
def test_sigkill_then_resume_equals_the_uninterrupted_run(reference_run, tmp_path, kill_at_step):
    config, reference_dir = reference_run
    run = ModelRun(tmp_path / "run")
    proc = run_cli(config, run.root, wait=False)

    def reached():
        try:
            return run.last.exists() and load_checkpoint(run.last)["step"] >= kill_at_step - 1
        except CheckpointError:  # caught between the rename and the next read: try again
            return False

    wait_for(reached, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = run_cli(config, run.root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stderr
    assert_same_run(run.root, reference_dir)


@pytest.mark.slow
def test_sigusr1_saves_exits_for_requeue_and_resumes(reference_run, tmp_path):
    config, reference_dir = reference_run
    run = ModelRun(tmp_path / "run")
    proc = run_cli(config, run.root, wait=False)
    wait_for(lambda: run.pid.exists() and run.last.exists(), proc)
    proc.send_signal(signal.SIGUSR1)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == REQUEUE_EXIT_CODE, output
    assert "preempted" in output and run.last.exists()
    resumed = run_cli(config, run.root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(run.root, reference_dir)


KILL_DURING_SAVE = """
import os, signal, sys, torch
import ffnlib.train.checkpoint as checkpoint
from ffnlib.runs import ModelRun
from ffnlib.train.__main__ import main
real_save, calls = torch.save, [0]
def dying_save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] == int(os.environ.get("DIE_AT_SAVE", 0)):
        f.write(b"half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
checkpoint.torch.save = dying_save
real_append = ModelRun.append_metrics
def dying_append(self, line):
    if line["epoch"] == int(os.environ.get("DIE_BEFORE_LINE", 0)):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_append(self, line)
ModelRun.append_metrics = dying_append
sys.exit(main(sys.argv[1:]))
"""


def run_and_kill(config, run: ModelRun, tmp_path, **env):
    config_path = tmp_path / "c.yaml"
    config_path.write_text(config.to_yaml())
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, "--config", str(config_path),
                             "--model-dir", str(run.root), "--no-progress"],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr


# The saves of the reference run: step 2 last.pt, step 4 last.pt, end of epoch 1 (step 6) best.pt then
# last.pt, step 8 and 10 last.pt, end of epoch 2 best.pt (if better), last.pt, then final.pt.
@pytest.mark.slow
@pytest.mark.parametrize("die_at_save, half_written", [(3, ".best.pt.tmp-*"), (4, ".last.pt.tmp-*")])
def test_kill_during_a_checkpoint_write_resumes_to_the_uninterrupted_run(reference_run, tmp_path, die_at_save,
                                                                          half_written):
    config, reference_dir = reference_run
    run = ModelRun(tmp_path / "run")
    run_and_kill(config, run, tmp_path, DIE_AT_SAVE=str(die_at_save))
    assert list(run.checkpoints.glob(half_written))  # the half-written file is there...
    assert leftover_temporaries(run.checkpoints) == list(run.checkpoints.glob(half_written))
    assert load_checkpoint(run.last)["step"] == 4  # ...and last.pt is the previous, whole one
    resumed = run_cli(config, run.root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not leftover_temporaries(run.checkpoints)
    assert_same_run(run.root, reference_dir)


@pytest.mark.slow
def test_kill_between_last_pt_and_its_metrics_line_loses_no_line(reference_run, tmp_path):
    config, reference_dir = reference_run
    run = ModelRun(tmp_path / "run")
    run_and_kill(config, run, tmp_path, DIE_BEFORE_LINE="1")
    assert load_checkpoint(run.last)["epoch"] == 1 and run.read_metrics() == []  # committed, line not written
    resumed = run_cli(config, run.root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(run.root, reference_dir)


def test_cli_rejects_a_bad_config_with_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"epochs": 2, "learnig_rate": 0.1}))
    done = subprocess.run([sys.executable, "-m", "ffnlib.train", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "bad.yaml" in done.stderr and "learnig_rate" in done.stderr


@pytest.mark.slow
def test_a_signal_during_validation_keeps_the_epoch_and_resumes(reference_run, tmp_path, monkeypatch, torch_state):
    config, reference_dir = reference_run
    real = loop_module.evaluate

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR1)  # arrives as validation starts
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "evaluate", signalled)
    with pytest.raises(Preempted, match="while validating epoch 1"):
        fit(config, tmp_path / "run", progress=False)
    state = load_checkpoint(ModelRun(tmp_path / "run").last)
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 6, 6)
    assert ModelRun(tmp_path / "run").read_metrics() == []
    monkeypatch.setattr(loop_module, "evaluate", real)
    fit(config, tmp_path / "run", progress=False)
    assert_same_run(tmp_path / "run", reference_dir)


def test_persistent_loader_workers_train_the_run_that_one_process_trains(reference_run, tmp_path, torch_state):
    """Two loader workers, started once and kept over both epochs (each batch's keys name the epoch),
    train exactly the run that the reference trained with no workers."""
    config, reference_dir = reference_run
    fit(config.replace(num_workers=2), tmp_path / "run", progress=False)
    assert_same_run(tmp_path / "run", reference_dir)


def test_checkpoint_names_are_checked(tmp_path):
    run = ModelRun(tmp_path)
    assert run.checkpoint("best") == run.best == tmp_path / "checkpoints" / "best.pt"
    assert run.epoch(3) == tmp_path / "checkpoints" / "epoch_3.pt"
    with pytest.raises(RunFolderError, match=r"checkpoint must be one of \('best', 'final', 'last'\) or epoch_<N>, got 'bset'"):
        load_trained(tmp_path, "bset")


@pytest.mark.slow
def test_sigterm_to_every_process_with_loader_workers_saves_and_exits_for_requeue(reference_run, tmp_path):
    """SLURM's preemption sends TERM to every process of the job, the loader's workers included: the
    workers ignore it, the main process saves last.pt at the next step and exits 75."""
    config, reference_dir = reference_run
    run = ModelRun(tmp_path / "run")
    path = tmp_path / "c.yaml"
    path.write_text(config.replace(num_workers=2).to_yaml())
    proc = subprocess.Popen([sys.executable, "-m", "ffnlib.train", "--config", str(path), "--model-dir", str(run.root),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group, as a job's processes
    wait_for(lambda: run.last.exists(), proc)  # mid-epoch 1: the workers are up
    os.killpg(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == REQUEUE_EXIT_CODE, output
    assert "killed by signal" not in output and "preempted" in output
    resumed = run_cli(config, run.root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(run.root, reference_dir)


@pytest.mark.slow
def test_a_second_trainer_of_one_model_folder_is_refused(reference_run, tmp_path):
    config = reference_run[0].replace(epochs=500)  # the first is still training when the second starts
    run = ModelRun(tmp_path / "run")
    first = run_cli(config, run.root, wait=False)
    try:
        wait_for(lambda: run.pid.exists(), first)
        second = run_cli(config, run.root)
        assert second.returncode == 2
        assert f"error: {run.root} is in use by pid {first.pid} on" in second.stderr
        assert "(training, since" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()


def test_a_finished_folder_without_last_pt_is_not_trained_again(tiny_root, tmp_path, torch_state):
    config = tiny(tiny_root, epochs=1, steps_per_epoch=2)
    first = fit(config, tmp_path / "run", progress=False)
    run = ModelRun(tmp_path / "run")
    run.last.unlink()  # looks redundant beside final.pt
    mtime = run.final.stat().st_mtime_ns
    again = fit(config, run, progress=False)
    assert again.history == first.history == run.read_metrics()
    assert run.final.stat().st_mtime_ns == mtime
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key


def test_results_without_a_resume_point_are_refused_unless_restarted(tiny_root, tmp_path, torch_state):
    config = tiny(tiny_root, epochs=1, steps_per_epoch=2)
    run = ModelRun(tmp_path / "run")
    fit(config, run, progress=False)
    run.last.unlink()
    run.final.unlink()
    history = run.read_metrics()
    with pytest.raises(RunFolderError, match=r"holds metrics.jsonl, best.pt of an earlier run but no last.pt"):
        fit(config, run, progress=False)
    assert run.read_metrics() == history  # nothing truncated
    again = fit(config, run, progress=False, restart=True)
    assert [line["epoch"] for line in again.history] == [1] and run.final.exists()


@pytest.mark.slow
def test_a_stop_during_validation_logs_the_epochs_lr_and_time(tiny_root, tmp_path, monkeypatch, torch_state):
    """The resumed epoch's line: the lr of its last step (cosine: it moves every step), the training
    seconds and throughput of the epoch, not of the validation that finished it."""
    config = tiny(tiny_root, lr_schedule="cosine", epochs=2)
    reference = fit(config, tmp_path / "reference", progress=False).history
    real = loop_module.evaluate

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "evaluate", signalled)
    with pytest.raises(Preempted):
        fit(config, tmp_path / "run", progress=False)
    monkeypatch.setattr(loop_module, "evaluate", real)
    history = fit(config, tmp_path / "run", progress=False).history
    assert without_timing(history) == without_timing(reference)
    assert history[0]["lr"] == reference[0]["lr"] != reference[1]["lr"]
    assert history[0]["seconds"] > 0 and history[0]["clips_per_s"] > 0

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import ffnlib.train.loop as loop
from ffnlib.datasets import SSv2
from ffnlib.paths import leftover_temporaries
from ffnlib.train.optim import make_optimizer
from ffnlib.train import (REQUEUE_EXIT_CODE, CheckpointError, NonFiniteLoss, RunFolder, TrainConfig, fit,
                          load_checkpoint, load_model_state, load_trained, read_metrics, save_checkpoint)

TIMING = ("seconds", "clips_per_s", "frames_per_s")


def tiny(root, **changes) -> TrainConfig:
    """A config that trains the small network for a few seconds on the tiny dataset."""
    values = dict(data_root=str(root), arch="small", frame_size=32, resize_size=36, num_workers=0, epochs=2,
                  batch_size=4, steps_per_epoch=6, lr=0.05, num_frames=8, frame_counts=[4, 8],
                  eval_frame_counts=[4, 8], val_max_videos=8, threads=1, deterministic=True)
    return TrainConfig.from_dict({**values, **changes})


def without_timing(history):
    return [{k: v for k, v in line.items() if k not in TIMING} for line in history]


def run_cli(config: TrainConfig, run_dir: Path, *extra, wait=True):
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(config.to_yaml())
    cmd = [sys.executable, "-m", "ffnlib.train", "--config", str(path), "--run-dir", str(run_dir),
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
    config = tiny(tiny_root, recipe=recipe, epochs=1, steps_per_epoch=3)
    result = fit(config, tmp_path / "run", progress=False)
    run = RunFolder(tmp_path / "run")
    assert TrainConfig.from_yaml(run.config) == config
    (line,) = read_metrics(run.root)
    assert line["epoch"] == 1 and line["step"] == 3
    for key in ("lr", "train_loss", "train_top1", "val_top1_4", "val_top5_8", *TIMING):
        assert key in line
    expected_parts = {"vanilla": ["train_ce"], "proportional": ["train_ce"], "ffn": ["train_ce", "train_kl_4"],
                      "mixed": ["train_ce_4", "train_ce_8"]}[recipe]
    assert all(part in line for part in expected_parts)
    for path in (run.last, run.best, run.final):
        state = torch.load(path, weights_only=True)  # tensors and plain types only
        assert state["config"] == config.to_dict() and state["step"] == 3
    assert not run.pid.exists()
    model, saved = load_trained(run.root, "final")
    assert saved == config
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


@pytest.mark.parametrize("recipe", ["vanilla", "ffn"])
def test_tiny_model_overfits_a_tiny_set(tiny_root, recipe, torch_state):
    """The training step (forward, loss, backward, clipping, SGD) drives the loss down on one fixed batch."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = tiny(tiny_root, recipe=recipe, dropout=0.0, lr=0.05, weight_decay=0.0, frame_counts=[4, 8])
    view = loop.train_view(config, SSv2(tiny_root, "train"))
    view.set_epoch(0)
    batch = torch.utils.data.default_collate([view[i] for i in range(8)])  # one fixed batch of 8 videos
    model = loop.build_model(config, num_classes=8)
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = [loop.train_step(model, optimizer, scaler, batch, config, torch.device("cpu"), None)[0].item()
              for _ in range(60)]
    assert losses[-1] < 0.1 * losses[0], losses[::10]


def test_completed_run_is_not_trained_again(tiny_root, tmp_path, torch_state):
    config = tiny(tiny_root, epochs=1, steps_per_epoch=2)
    first = fit(config, tmp_path / "run", progress=False)
    mtime = RunFolder(tmp_path / "run").final.stat().st_mtime_ns
    again = fit(config, tmp_path / "run", progress=False)
    assert again.history == first.history
    assert RunFolder(tmp_path / "run").final.stat().st_mtime_ns == mtime


def test_resuming_with_another_model_config_is_refused(tiny_root, tmp_path, torch_state):
    fit(tiny(tiny_root, epochs=1, steps_per_epoch=2), tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match=r"arch: checkpoint 'small' vs config 'medium'"):
        fit(tiny(tiny_root, epochs=2, steps_per_epoch=2, arch="medium"), tmp_path / "run", progress=False)


def test_checkpoint_into_the_wrong_model_names_the_mismatch(tiny_root, tmp_path, torch_state):
    fit(tiny(tiny_root, epochs=1, steps_per_epoch=1), tmp_path / "run", progress=False)
    state = load_checkpoint(RunFolder(tmp_path / "run").final)
    other = loop.build_model(tiny(tiny_root, recipe="ffn"), num_classes=8)
    with pytest.raises(CheckpointError, match="does not fit the model FFNResNet: missing"):
        load_model_state(other, state["model"], "final.pt")
    fewer_classes = loop.build_model(tiny(tiny_root), num_classes=5)
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
    real = loop.compute_loss

    def poisoned(*args, **kwargs):
        loss, *rest = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), *rest

    monkeypatch.setattr(loop, "compute_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss \(nan\) in .* at epoch 1, step 3"):
        fit(tiny(tiny_root, save_every_steps=1), tmp_path / "run", progress=False)
    state = load_checkpoint(RunFolder(tmp_path / "run").last)
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


def final_weights(run_dir):
    return load_checkpoint(RunFolder(run_dir).final)["model"]


def assert_same_run(run_dir, reference_dir):
    assert without_timing(read_metrics(run_dir)) == without_timing(read_metrics(reference_dir))
    ours, ref = final_weights(run_dir), final_weights(reference_dir)
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key


@pytest.mark.parametrize("kill_at_step", [3, 9])  # mid-epoch 1 (after a step checkpoint), mid-epoch 2
def test_sigkill_then_resume_equals_the_uninterrupted_run(reference_run, tmp_path, kill_at_step):
    config, reference_dir = reference_run
    run = RunFolder(tmp_path / "run")
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


def test_sigusr1_saves_exits_for_requeue_and_resumes(reference_run, tmp_path):
    config, reference_dir = reference_run
    run = RunFolder(tmp_path / "run")
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
from ffnlib.train.__main__ import main
real_save, calls = torch.save, [0]
def dying_save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] == int(os.environ["DIE_AT_SAVE"]):
        f.write(b"half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
checkpoint.torch.save = dying_save
sys.exit(main(sys.argv[1:]))
"""


def test_kill_during_a_checkpoint_write_leaves_a_loadable_last_pt(reference_run, tmp_path):
    config, reference_dir = reference_run
    run = RunFolder(tmp_path / "run")
    config_path = tmp_path / "c.yaml"
    config_path.write_text(config.to_yaml())
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, "--config", str(config_path),
                             "--run-dir", str(run.root), "--no-progress"],
                            env={**os.environ, "DIE_AT_SAVE": "3"}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert list(run.checkpoints.glob(".last.pt.tmp-*"))  # the half-written file is there...
    assert leftover_temporaries(run.checkpoints) == list(run.checkpoints.glob(".last.pt.tmp-*"))
    assert load_checkpoint(run.last)["step"] == 4  # ...and last.pt is the previous, whole one
    resumed = run_cli(config, run.root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not leftover_temporaries(run.checkpoints)
    assert_same_run(run.root, reference_dir)


def test_cli_rejects_a_bad_config_with_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"epochs": 2, "learnig_rate": 0.1}))
    done = subprocess.run([sys.executable, "-m", "ffnlib.train", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "bad.yaml" in done.stderr and "learnig_rate" in done.stderr


def test_a_signal_during_validation_keeps_the_epoch_and_resumes(reference_run, tmp_path, monkeypatch, torch_state):
    config, reference_dir = reference_run
    real = loop.evaluate

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR1)  # arrives as validation starts
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", signalled)
    with pytest.raises(loop.Preempted, match="while validating epoch 1"):
        fit(config, tmp_path / "run", progress=False)
    state = load_checkpoint(RunFolder(tmp_path / "run").last)
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 6, 6)
    assert read_metrics(tmp_path / "run") == []
    monkeypatch.setattr(loop, "evaluate", real)
    fit(config, tmp_path / "run", progress=False)
    assert_same_run(tmp_path / "run", reference_dir)


def test_checkpoint_names_are_checked(tmp_path):
    run = RunFolder(tmp_path)
    assert run.checkpoint("best") == run.best == tmp_path / "checkpoints" / "best.pt"
    assert run.epoch(3) == tmp_path / "checkpoints" / "epoch_3.pt"
    with pytest.raises(ValueError, match=r"checkpoint must be one of \('best', 'final', 'last'\) or epoch_<N>, got 'bset'"):
        load_trained(tmp_path, "bset")

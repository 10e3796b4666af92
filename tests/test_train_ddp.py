import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from ffnlib.runs import ModelRun
from ffnlib.train import TrainConfig, epoch_batches
from ffnlib.train.distributed import World

pytestmark = pytest.mark.slow  # `make test-unit` leaves it out; `make test` runs it

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(*args, timeout=180):
    """Two gloo ranks under torchrun; one more try if a rank was aborted by the C++ runtime.

    Twice so far in CI, a gloo rank died with SIGABRT ("terminate called without an active
    exception"), the second time although both ranks pass a barrier before leaving the process group;
    75 runs on a loaded 2-core machine did not reproduce it. A second abort in a row, or any other failure,
    still fails the test, and a retried abort is reported as a warning with the first attempt's output.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
               *map(str, args)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 and "terminate called without an active exception" in done.stdout + done.stderr:
        warnings.warn("a gloo rank aborted; retried once. First attempt's output:\n" + done.stdout + done.stderr)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return done


def test_ranks_split_each_global_batch_without_overlap():
    config = TrainConfig(batch_size=6, seed=3)
    whole = epoch_batches(config, 20, epoch=1, steps=5, world=World())
    halves = [epoch_batches(config, 20, epoch=1, steps=5, world=World(rank, 2)) for rank in range(2)]
    for b in range(5):
        assert sorted(halves[0][b] + halves[1][b]) == sorted(whole[b])


@pytest.mark.parametrize("recipe", ["vanilla", "ffn", "ffn_no_td", "mixed"])
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(recipe, ddp_results):
    sys.path.insert(0, str(WORKER.parent))
    import ddp_worker

    single = ddp_worker.run(World(), recipe)
    ddp = ddp_results[recipe]
    assert ddp["losses"][0] == pytest.approx(single["losses"][0], rel=1e-5)  # the first-step loss
    assert ddp["losses"][1] == pytest.approx(single["losses"][1], rel=1e-5)  # after one averaged update
    assert ddp["weights"].keys() == single["weights"].keys()
    for name, weight in single["weights"].items():
        torch.testing.assert_close(ddp["weights"][name], weight, rtol=1e-4, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """The worker's results for every recipe, from one torchrun of two gloo processes."""
    out = tmp_path_factory.mktemp("ddp") / "ddp.pt"
    done = torchrun(WORKER, out)
    assert done.returncode == 0, done.stdout + done.stderr
    return torch.load(out)


def test_the_command_line_trains_under_torchrun_and_only_rank_0_writes(tiny_root, tmp_path):
    config = TrainConfig.from_dict(dict(
        data_root=str(tiny_root), recipe="ffn", arch="small", frame_size=32, resize_size=36, num_workers=0,
        epochs=1, batch_size=4, steps_per_epoch=2, frame_counts=[4, 8], eval_frames=[4, 8],
        val_max_videos=8, threads=1))
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    run = ModelRun(tmp_path / "run")
    done = torchrun("-m", "ffnlib.train", "--config", path, "--model-dir", run.root, "--no-progress")
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = run.read_metrics()
    assert line["step"] == 2 and line["train_top1"] >= 0
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["best.pt", "final.pt", "last.pt"]

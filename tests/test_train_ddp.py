import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from ffnlib.errors import ConfigError
from ffnlib.models import create_model
from ffnlib.runs import ModelRun
from ffnlib.train import REQUEUE_EXIT_CODE, TrainConfig, epoch_batches, fit, load_checkpoint
from ffnlib.train.distributed import World, world_config
from ffnlib.train.setup import sync_batchnorm

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nodes(*args, nodes: int = 2) -> list[subprocess.Popen]:
    """`nodes` torchrun "nodes" on this machine, one process each, every one the same command: the
    elastic launch of several nodes, its c10d rendezvous on 127.0.0.1 at a free port (no clash with a
    test running beside). Each node in a session of its own, so that `stop_nodes` ends all it started."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", "--nproc-per-node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id=test-{port}",
               *map(str, args)]
    return [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True) for _ in range(nodes)]


def stop_nodes(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    """Each node's exit code and output, waiting at most `timeout` s in all; whatever is left then
    (or after an error) is killed with its whole process group."""
    deadline = time.monotonic() + timeout
    try:
        outputs = [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for p in procs]
        return [(p.returncode, out) for p, out in zip(procs, outputs)]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def run_nodes(*args, nodes: int = 2, timeout: float = 240) -> list[tuple[int, str]]:
    """`start_nodes` and wait for them; one more try if a rank was aborted by the C++ runtime (as `torchrun`)."""
    done = stop_nodes(start_nodes(*args, nodes=nodes), timeout)
    if any(rc != 0 and "terminate called without an active exception" in out for rc, out in done):
        warnings.warn("a gloo rank aborted; retried once. First attempt's output:\n" + "\n".join(o for _, o in done))
        done = stop_nodes(start_nodes(*args, nodes=nodes), timeout)
    return done


def assert_matches_one_process(recipe: str, ddp: dict) -> None:
    sys.path.insert(0, str(WORKER.parent))
    import ddp_worker

    single = ddp_worker.run(World(), recipe)
    assert ddp["losses"][0] == pytest.approx(single["losses"][0], rel=1e-5)  # the first-step loss
    assert ddp["losses"][1] == pytest.approx(single["losses"][1], rel=1e-5)  # after one averaged update
    assert ddp["weights"].keys() == single["weights"].keys()
    for name, weight in single["weights"].items():
        torch.testing.assert_close(ddp["weights"][name], weight, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("recipe", ["vanilla", "ffn", "ffn_no_td", "mixed"])
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(recipe, ddp_results):
    assert_matches_one_process(recipe, ddp_results[recipe])


@pytest.mark.parametrize("recipe", ["vanilla", "ffn", "mixed"])
def test_two_nodes_match_one_process_on_the_same_global_batch(recipe, two_node_results):
    assert_matches_one_process(recipe, two_node_results[recipe])


@pytest.fixture(scope="module")
def two_node_results(tmp_path_factory):
    """The worker's results from two torchrun nodes on localhost (c10d rendezvous), one gloo process each."""
    out = tmp_path_factory.mktemp("nodes") / "ddp.pt"
    done = run_nodes(WORKER, out)
    assert all(rc == 0 for rc, _ in done), "\n".join(o for _, o in done)
    return torch.load(out)


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


def _rank_pids(agents: list[subprocess.Popen]) -> list[int]:
    """The training processes torchrun started (its children), on every node."""
    pids = []
    for agent in agents:
        with open(f"/proc/{agent.pid}/task/{agent.pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def _catches_usr1(pid: int) -> bool:
    """Has process `pid` installed a handler for SIGUSR1 (its SigCgt mask, /proc/PID/status)?"""
    with open(f"/proc/{pid}/status") as f:
        caught = int(next(line for line in f if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGUSR1 - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the ranks through /proc")
def test_a_stop_sent_to_one_node_saves_once_and_stops_both_nodes(tiny_root, tmp_path, caplog, torch_state):
    """SIGUSR1 to the rank that is not rank 0 (on the other node): every rank stops at the same step,
    rank 0 writes last.pt, the trainers exit 75 on both nodes; a single process resumes the global batch."""
    config = TrainConfig.from_dict(dict(
        data_root=str(tiny_root), recipe="ffn", arch="small", frame_size=32, resize_size=36, num_workers=0,
        epochs=1, batch_size=4, steps_per_epoch=200, frame_counts=[4, 8], eval_frames=[4, 8], val_max_videos=8,
        threads=1))
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    run = ModelRun(tmp_path / "run")
    agents = start_nodes("-m", "ffnlib.train", "--config", path, "--model-dir", run.root, "--no-progress")
    try:
        deadline = time.monotonic() + 180
        while not (run.pid.exists() and run.pid.read_text().strip()):  # rank 0 caught the signals
            assert all(a.poll() is None for a in agents) and time.monotonic() < deadline, "no train.pid"
            time.sleep(0.1)
        rank0 = int(run.pid.read_text().split()[0])
        assert run.pid.read_text().split()[1] == socket.gethostname()  # "PID HOST"
        (other,) = [pid for pid in _rank_pids(agents) if pid != rank0]
        while not _catches_usr1(other):  # rank 1 is past its own set-up too
            assert time.monotonic() < deadline, "rank 1 never installed its handler"
            time.sleep(0.1)
        os.kill(other, signal.SIGUSR1)
    finally:
        done = stop_nodes(agents, timeout=180)
    outputs = "\n".join(out for _, out in done)
    assert all(out.count("preempted: ") == 1 for _, out in done), outputs  # each node's trainer stopped...
    assert outputs.count(f"exitcode  : {REQUEUE_EXIT_CODE}") == 2, outputs  # ...and exited 75 (torchrun: 1)
    state = load_checkpoint(run.last)  # written once, by rank 0, at the step every rank stopped at
    assert 0 < state["step"] == state["batch_in_epoch"] < 200 and state["epoch"] == 0
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["last.pt"] and not run.pid.exists()
    end = state["step"] + 2  # one process, the same global batch; a shorter epoch (allowed) to save time
    with caplog.at_level(logging.INFO, logger="ffnlib.train.loop"):
        fit(config.replace(steps_per_epoch=end), run.root, progress=False)
    assert f"at epoch 1, step {state['step']}" in caplog.text and run.read_metrics()[0]["step"] == end


def test_the_global_batch_and_lr_follow_the_stated_rule():
    official = TrainConfig(batch_size=32, lr=0.01)
    cpu = torch.device("cpu")
    for ranks in (1, 2, 4, 8, 32):  # default: the global batch stays 32, split; lr as given
        assert world_config(official, World(0, ranks), cpu) == official
    with pytest.raises(ConfigError, match="batch_size 32 is not divisible by the 3 ranks"):
        world_config(official, World(0, 3), cpu)
    scaled = official.replace(batch_per_rank=16)  # 16 videos per rank: batch and lr grow with the ranks
    assert world_config(scaled, World(0, 2), cpu) == scaled  # 2 x 16 = 32: the official recipe itself
    for ranks, batch, lr in ((4, 64, 0.02), (16, 256, 0.08), (3, 48, 0.015)):
        resolved = world_config(scaled, World(0, ranks), cpu)
        assert (resolved.batch_size, resolved.lr) == (batch, pytest.approx(lr))
        assert world_config(resolved, World(0, ranks), cpu) == resolved  # what the model folder records
    with pytest.raises(ConfigError, match="sync_bn=True on 2 cpu processes"):
        world_config(official.replace(sync_bn=True), World(0, 2), cpu)
    assert world_config(official.replace(sync_bn=True), World(), cpu).sync_bn  # one process: nothing to sync


def test_sync_bn_keeps_each_branchs_batchnorms_and_the_checkpoint_keys():
    torch.manual_seed(0)
    model = create_model("ffn_small", num_classes=5, frame_counts=(2, 4))
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    synced = sync_batchnorm(model)
    assert [n for n, m in synced.named_modules() if isinstance(m, nn.SyncBatchNorm)] == norms  # one for one
    assert not any(type(m) is nn.BatchNorm2d for m in synced.modules())
    assert any(n.endswith(".1") for n in norms)  # the per-branch copies (BranchNorm entries) among them
    assert synced.state_dict().keys() == plain.keys()
    assert all(torch.equal(synced.state_dict()[k], v) for k, v in plain.items())

"""The SLURM scripts (slurm/), run without SLURM: fake `scontrol`, `conda`, `srun`, `hostname` and python
executables on PATH record what the scripts do; the fake python plays papermill or torchrun (exit 0, 75,
1), or a parent whose child trains: writes train.pid, saves and exits 75 on USR1, as ffnlib.train's loop
does. The fake srun runs its command once per "node" here (node0, node1, ... as `hostname` says in each).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ffnlib import paper, profiles
from ffnlib.paths import PROJECT_ROOT
from ffnlib.train import FIT_KEYS, TrainConfig
from ffnlib.train.config import parse_overrides

SLURM = PROJECT_ROOT / "slurm"
SCRIPTS = sorted(SLURM.glob("*.sbatch"))
SWEEPS = sorted((SLURM / "sweeps").glob("*.txt"))
JOB_ID = "12345"

# The fake python. FAKE_MODE: exit0 | exit75 | exit1 | train. In train mode it stands for papermill or
# torchrun: its child is the training process (train.pid at <run dir>/FAKE_PIDFILE after FAKE_DELAY s;
# USR1 => "got USR1" and exit 75; else exit 0 after ~15 s). The parent keeps bash's default USR1
# action (die), like papermill and torchrun, and records its child's exit code, then exits with it
# (or FAKE_PARENT_EXIT: torchrun reports a worker's 75 as 1). Under the fake srun (SLURM_NODEID set)
# it is one node's torchrun: only node FAKE_RANK0_NODE's trainer (rank 0) writes train.pid, as
# "PID HOST"; a trainer told by USR1 writes fake/stop, and the other nodes' trainers stop on seeing it
# (the loop's all-reduced stop flag), each exiting 75.
FAKE_PYTHON = r"""#!/bin/bash
node=${SLURM_NODEID:-}
printf '%s\n' "$@" > "$FAKE_DIR/argv${node:+.$node}"
echo "${FFN_FAKE_ENV:-none}" > "$FAKE_DIR/env"
run_dir= prev=
for a in "$@"; do [[ $prev == --run-dir ]] && run_dir=$a; prev=$a; done
echo "fake python output"
case $FAKE_MODE in
    exit0) exit 0 ;;
    exit75) exit 75 ;;
    exit1) exit 1 ;;
esac
pidfile=$run_dir/$FAKE_PIDFILE
if [[ -z $node ]]; then
(
    trap 'echo "got USR1" >> "$FAKE_DIR/trainer"; exit 75' USR1
    sleep "${FAKE_DELAY:-0}"
    mkdir -p "$(dirname "$pidfile")"
    echo "$BASHPID" > "$pidfile"
    echo "started" >> "$FAKE_DIR/trainer"
    for _ in $(seq 300); do sleep 0.05; done
    exit 0
) &
else
(
    trap 'echo "got USR1 on node$node" >> "$FAKE_DIR/trainer"; touch "$FAKE_DIR/stop"; exit 75' USR1
    if [[ $node == "${FAKE_RANK0_NODE:-0}" ]]; then
        mkdir -p "$(dirname "$pidfile")"
        echo "$BASHPID $(hostname)" > "$pidfile"
    fi
    echo "started on node$node" >> "$FAKE_DIR/trainer"
    for _ in $(seq 300); do
        [[ -e $FAKE_DIR/stop ]] && { echo "stopped with the others on node$node" >> "$FAKE_DIR/trainer"; exit 75; }
        sleep 0.05
    done
    exit 0
) &
fi
child=$!
echo "$$" > "$FAKE_DIR/parent.pid"
wait "$child"
rc=$?
echo "${node:+node$node }child exit $rc" >> "$FAKE_DIR/parent"
exit "${FAKE_PARENT_EXIT:-$rc}"
"""

# srun: records its options and command, runs the command once per node (--nodes=N) with SLURM_NODEID and
# a `hostname` of node<i>, passes USR1 on to every task (as srun does), exits with the highest exit code.
FAKE_SRUN = r"""#!/bin/bash
printf '%s\n' "$@" > "$FAKE_DIR/srun_argv"
nodes=1
while [[ $1 == -* ]]; do
    [[ $1 == --nodes=* ]] && nodes=${1#--nodes=}
    shift
done
pids=()
trap 'echo "srun got USR1" >> "$FAKE_DIR/srun"; kill -USR1 "${pids[@]}"' USR1
for ((i = 0; i < nodes; i++)); do
    SLURM_NODEID=$i FAKE_HOSTNAME=node$i "$@" &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
    while :; do
        r=0
        wait "$pid" || r=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    echo "task $pid exit $r" >> "$FAKE_DIR/srun"
    ((r > rc)) && rc=$r
done
exit "$rc"
"""

FAKE_HOSTNAME = """#!/bin/bash
echo "${FAKE_HOSTNAME:-node0}"
"""

RECORDER = """#!/bin/bash
echo "$(basename "$0") $*" >> "$FAKE_DIR/calls"
"""

# `conda shell.bash hook` output: a conda function whose activate records the env it was asked for
FAKE_CONDA = r"""#!/bin/bash
if [[ "$1 $2" == "shell.bash hook" ]]; then
    echo 'conda() { if [[ $1 == activate ]]; then export FFN_FAKE_ENV="conda:$2"; fi; }'
fi
"""


class Job:
    """A project copy with the slurm/ folder, fakes on PATH, and helpers to run a script in it."""

    def __init__(self, root: Path):
        self.root = root
        self.fake = root / "fake"
        self.fake.mkdir()
        shutil.copytree(SLURM, root / "slurm")
        (root / "params.yaml").write_text("train: {}\n")
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, text in {"python-fake": FAKE_PYTHON, "scontrol": RECORDER, "srun": FAKE_SRUN,
                           "hostname": FAKE_HOSTNAME}.items():
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SLURM_", "FFN_", "CONDA", "VIRTUAL_ENV", "CUDA_VISIBLE"))}
        self.env.update(PATH=f"{self.bin}:/usr/bin:/bin", FAKE_DIR=str(self.fake), FAKE_MODE="exit0",
                        FAKE_PIDFILE="models/vanilla_16f/train.pid", FFN_PYTHON=str(self.bin / "python-fake"),
                        SLURM_JOB_ID=JOB_ID, SLURM_SUBMIT_DIR=str(root))

    def start(self, script: str, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(["bash", str(self.root / "slurm" / script), *args], cwd=self.root,
                                env={**self.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, script: str, *args: str, **env: str) -> tuple[int, str]:
        proc = self.start(script, *args, **env)
        out, _ = proc.communicate(timeout=30)
        return proc.returncode, out

    def read(self, name: str) -> str:
        path = self.fake / name
        return path.read_text() if path.exists() else ""

    def argv(self, node: int | None = None) -> list[str]:
        return self.read("argv" if node is None else f"argv.{node}").splitlines()

    def calls(self) -> list[str]:
        return self.read("calls").splitlines()

    def wait_for(self, name: str, text: str = "", timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.fake / name).exists() or text not in self.read(name):
            assert time.monotonic() < deadline, f"fake/{name} never held {text!r}"
            time.sleep(0.02)


@pytest.fixture
def job(tmp_path) -> Job:
    return Job(tmp_path)


# ------------------------------------------------------------------------------------------ scripts
@pytest.mark.parametrize("script", SCRIPTS + [SLURM / "lib.sh", SLURM / "train_node.sh"], ids=lambda p: p.name)
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_sbatch_header_sends_usr1_to_the_batch_shell_and_allows_requeue(script):
    header = dict(re.findall(r"^#SBATCH --([\w-]+)=?(\S*)", script.read_text(), re.M))
    # B: the batch shell traps it (without B: it goes to job steps, and there are none); 600 s: room
    # for the epoch-end validation, during which the loop does not stop
    assert header["signal"] == "B:USR1@600"
    assert "requeue" in header and header["open-mode"] == "append"  # a requeued job appends to its log
    assert header["output"].startswith("runs/slurm-%x-")


# ------------------------------------------------------------------------------------------ outcomes
def test_clean_finish_runs_the_notebook_and_does_not_requeue(job):
    rc, out = job.run("notebook.sbatch", "04", "params.yaml", "runs/study", "-p", "seed", "1")
    run_dir = job.root / "runs" / "study"
    assert rc == 0, out
    assert job.argv() == ["-m", "ffnlib.workbook", "run", "04", "--run-dir", str(run_dir), "-f", "params.yaml",
                          "-p", "seed", "1"]
    assert job.calls() == []
    log = (run_dir / f"slurm-{JOB_ID}.log").read_text()  # the command's output, teed into the run folder
    assert "fake python output" in log and "fake python output" in out and "done" in log


@pytest.mark.parametrize("runs_dir", ["", "elsewhere/runs"])
def test_run_dir_defaults_to_the_profile_name(job, tmp_path, runs_dir):
    env = {"FFN_RUNS_DIR": str(tmp_path / runs_dir)} if runs_dir else {}
    rc, out = job.run("notebook.sbatch", "05", "params.yaml", "-p", "device", "cuda", **env)
    assert rc == 0, out
    run_dir = tmp_path / (runs_dir or "runs") / "params"
    assert job.argv()[4:] == ["--run-dir", str(run_dir), "-f", "params.yaml", "-p", "device", "cuda"]


def test_exit_75_requeues_the_job(job):
    rc, out = job.run("notebook.sbatch", "07", "params.yaml", "runs/study", FAKE_MODE="exit75")
    assert rc == 75, out
    assert job.calls() == [f"scontrol requeue {JOB_ID}"]


def test_exit_75_outside_slurm_says_to_run_again(job):
    env = dict(job.env)
    del env["SLURM_JOB_ID"]
    job.env = env
    rc, out = job.run("notebook.sbatch", "07", "params.yaml", "runs/study", FAKE_MODE="exit75")
    assert rc == 75 and job.calls() == []
    assert "run the same command again to resume" in out


@pytest.mark.parametrize("script, args", [("notebook.sbatch", ["04", "params.yaml"]),
                                          ("train.sbatch", ["params.yaml", "runs/m"])])
def test_failure_is_not_requeued(job, script, args):
    rc, out = job.run(script, *args, FAKE_MODE="exit1")
    assert rc == 1, out
    assert job.calls() == []
    assert "failed with exit code 1" in out


def test_missing_parameters_file_fails_before_running_anything(job):
    rc, out = job.run("notebook.sbatch", "04", "nope.yaml")
    assert rc == 2 and "nope.yaml: no such parameters file" in out
    assert job.argv() == [] and job.calls() == []


# ------------------------------------------------------------------------------------------ USR1 forwarding
def _usr1_when(job: Job, proc: subprocess.Popen, name: str, text: str = "") -> tuple[int, str]:
    job.wait_for(name, text)
    os.kill(proc.pid, signal.SIGUSR1)  # what SLURM does 10 minutes before the time limit (B: = batch shell only)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_usr1_reaches_the_training_process_only_and_requeues(job):
    proc = job.start("notebook.sbatch", "04", "params.yaml", "runs/study", FAKE_MODE="train")
    rc, out = _usr1_when(job, proc, "trainer", "started")
    assert "got USR1" in job.read("trainer")  # the trainer (papermill's grandchild) was told
    assert job.read("parent") == "child exit 75\n"  # papermill's stand-in was not (USR1 would kill it)
    assert rc == 75, out
    assert job.calls() == [f"scontrol requeue {JOB_ID}"]


def test_usr1_before_training_starts_reaches_it_once_it_writes_train_pid(job):
    proc = job.start("notebook.sbatch", "04", "params.yaml", "runs/study", FAKE_MODE="train", FAKE_DELAY="1.5")
    rc, out = _usr1_when(job, proc, "parent.pid")  # notebook started, no train.pid yet
    assert job.read("trainer") == "started\ngot USR1\n", out
    assert rc == 75 and job.calls() == [f"scontrol requeue {JOB_ID}"]


def test_usr1_during_environment_set_up_is_not_lost(job):
    (job.root / ".venv" / "bin").mkdir(parents=True)
    (job.root / ".venv" / "bin" / "activate").write_text(f"touch {job.fake}/activating; sleep 1\n")
    proc = job.start("notebook.sbatch", "04", "params.yaml", "runs/study", FAKE_MODE="train")
    rc, out = _usr1_when(job, proc, "activating")
    assert job.read("trainer") == "started\ngot USR1\n", out
    assert rc == 75 and job.calls() == [f"scontrol requeue {JOB_ID}"]


def test_stale_train_pid_of_another_process_is_not_signalled(job):
    stale = job.root / "runs" / "study" / "models" / "old"
    stale.mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "30"])  # not a descendant of the job: USR1 would kill it
    try:
        (stale / "train.pid").write_text(f"{bystander.pid}\n")
        proc = job.start("notebook.sbatch", "04", "params.yaml", "runs/study", FAKE_MODE="train")
        rc, out = _usr1_when(job, proc, "trainer", "started")
        assert bystander.poll() is None, "a process outside the job got USR1"
        assert f"ignoring {stale / 'train.pid'}" in out
        assert "got USR1" in job.read("trainer") and rc == 75
    finally:
        bystander.kill()
        bystander.wait()


# ------------------------------------------------------------------------------------------ several GPUs
def test_train_runs_torchrun_on_every_gpu_of_the_node(job):
    rc, out = job.run("train.sbatch", "params.yaml", "runs/m", "--set", "recipe=ffn", SLURM_GPUS_ON_NODE="2")
    assert rc == 0, out
    assert job.argv() == ["-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
                          "-m", "ffnlib.train", "--config", "params.yaml", "--run-dir",
                          str(job.root / "runs/m"), "--no-progress", "--set", "recipe=ffn"]


def test_train_usr1_stops_rank_0_and_requeues_although_torchrun_exits_1(job):
    proc = job.start("train.sbatch", "params.yaml", "runs/m", FAKE_MODE="train", FAKE_PIDFILE="models/ffn/train.pid",
                     FAKE_PARENT_EXIT="1")
    rc, out = _usr1_when(job, proc, "trainer", "started")
    assert "got USR1" in job.read("trainer") and job.read("parent") == "child exit 75\n"
    assert rc == 75, out
    assert job.calls() == [f"scontrol requeue {JOB_ID}"]


# ------------------------------------------------------------------------------------------ several nodes
def test_train_on_two_nodes_runs_one_torchrun_per_node_against_one_rendezvous(job):
    rc, out = job.run("train.sbatch", "params.yaml", "runs/m", "--set", "recipe=ffn", SLURM_JOB_NUM_NODES="2",
                      SLURM_GPUS_ON_NODE="4", SLURM_CPUS_PER_TASK="64", FFN_RDZV_PORT="29611")
    assert rc == 0, out
    run_dir = str(job.root / "runs/m")
    assert job.read("srun_argv").splitlines() == [
        "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--cpus-per-task=64", "--kill-on-bad-exit=1", "--label",
        "bash", "slurm/train_node.sh", "node0:29611", "2", "params.yaml", run_dir, "--set", "recipe=ffn"]
    for node in (0, 1):  # every node the same command: its 4 GPUs, the rendezvous on node0 (the batch node)
        assert job.argv(node) == [
            "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
            "--rdzv-endpoint=node0:29611", f"--rdzv-id={JOB_ID}", "-m", "ffnlib.train", "--config", "params.yaml",
            "--run-dir", run_dir, "--no-progress", "--set", "recipe=ffn"]
    assert job.calls() == [] and "done" in out
    assert job.read("argv") == ""  # no single-node torchrun besides


def test_rendezvous_port_is_the_jobs_or_the_next_free_one(job):
    import socket

    rc, out = job.run("train.sbatch", "params.yaml", "runs/m", SLURM_JOB_NUM_NODES="2")
    assert rc == 0, out
    port = 29500 + int(JOB_ID) % 10000
    assert f"--rdzv-endpoint=node0:{port}" in job.argv(0)
    with socket.socket() as taken:  # someone listens there now: the next port
        taken.bind(("127.0.0.1", port))
        taken.listen()
        rc, out = job.run("train.sbatch", "params.yaml", "runs/m", SLURM_JOB_NUM_NODES="2")
    assert rc == 0, out
    assert f"--rdzv-endpoint=node0:{port + 1}" in job.argv(1)


@pytest.mark.parametrize("rank0_node", ["0", "1"])
def test_two_nodes_usr1_reaches_rank_0_on_its_node_every_rank_stops_and_the_job_requeues_once(job, rank0_node):
    """USR1 to the batch shell goes to srun, then to each node's task; only the task on rank 0's node
    (train.pid names its host) tells its trainer; the others stop with it; torchrun exits 1 on both
    nodes, the node tasks 75, the batch shell requeues the job once."""
    proc = job.start("train.sbatch", "params.yaml", "runs/m", FAKE_MODE="train", FAKE_PIDFILE="models/ffn/train.pid",
                     FAKE_PARENT_EXIT="1", FAKE_RANK0_NODE=rank0_node, SLURM_JOB_NUM_NODES="2")
    job.wait_for("trainer", "started on node0")
    job.wait_for("trainer", "started on node1")
    rc, out = _usr1_when(job, proc, "trainer", "started")
    other = str(1 - int(rank0_node))
    trainer = job.read("trainer")
    assert f"got USR1 on node{rank0_node}" in trainer and f"got USR1 on node{other}" not in trainer, out
    assert f"stopped with the others on node{other}" in trainer
    assert sorted(job.read("parent").splitlines()) == ["node0 child exit 75", "node1 child exit 75"]
    assert job.read("srun").count("exit 75") == 2 and "srun got USR1" in job.read("srun")
    assert rc == 75, out
    assert job.calls() == [f"scontrol requeue {JOB_ID}"]
    assert "ignoring" not in out  # the other node's task knew the pid was not its node's


def test_two_nodes_a_failure_is_not_requeued(job):
    rc, out = job.run("train.sbatch", "params.yaml", "runs/m", FAKE_MODE="exit1", SLURM_JOB_NUM_NODES="2")
    assert rc == 1, out
    assert job.calls() == [] and "failed with exit code 1" in out


# ------------------------------------------------------------------------------------------ sweeps
SWEEP = """# a comment line
notebook 07 params.yaml runs/seed1 -p seed 1   # trailing comment

train params.yaml runs/x --set recipe=mixed --set frame_counts=[4,16]
bogus 1 2
"""


def test_sweep_task_runs_its_line(job):
    (job.root / "sweep.txt").write_text(SWEEP)
    rc, out = job.run("sweep.sbatch", "sweep.txt", SLURM_ARRAY_TASK_ID="0")
    assert rc == 0, out
    assert job.argv() == ["-m", "ffnlib.workbook", "run", "07", "--run-dir", str(job.root / "runs/seed1"),
                          "-f", "params.yaml", "-p", "seed", "1"]
    rc, out = job.run("sweep.sbatch", "sweep.txt", SLURM_ARRAY_TASK_ID="1", FAKE_MODE="exit75")
    assert job.argv()[-7:] == ["--run-dir", str(job.root / "runs/x"), "--no-progress",
                               "--set", "recipe=mixed", "--set", "frame_counts=[4,16]"]  # no globbing
    assert job.argv()[4] == "--nproc_per_node=1"
    assert rc == 75 and job.calls() == [f"scontrol requeue {JOB_ID}"]


@pytest.mark.parametrize("task, message", [("2", "starts with 'bogus'"), ("3", "submit with --array=0-2")])
def test_sweep_refuses_bad_lines_and_tasks_beyond_the_file(job, task, message):
    (job.root / "sweep.txt").write_text(SWEEP)
    rc, out = job.run("sweep.sbatch", "sweep.txt", SLURM_ARRAY_TASK_ID=task)
    assert rc == 2 and message in out
    assert job.argv() == []


def _sweep_runs(path: Path) -> list[list[str]]:
    lines = (line.split("#")[0].split() for line in path.read_text().splitlines())
    return [words for words in lines if words]


def _notebook_models(profile: str, overrides: dict) -> dict[str, TrainConfig]:
    """The configs notebooks 04 and 07 train, by model folder name, as their cells build them when
    run with `profile` and training `overrides` (reproduce --profile P --set ...)."""
    settings = profiles.load_profile(profile)
    base = profiles.train_config(settings, overrides)
    models = {}
    for stem in ("04_train_tsm", "07_train_ffn"):
        notebook = profiles.find_notebook(stem)
        ns = {**profiles.declared_parameters(notebook), **profiles.profile_parameters(settings, notebook)}
        if stem == "04_train_tsm":
            configs = [base, *(base.replace(num_frames=t) for t in ns["st_frame_counts"]),
                       *(base.replace(recipe="finetune", num_frames=t, init_from=base.model_name)
                         for t in ns["finetune_frame_counts"])]
        else:
            configs = [paper.model_config(base, name) for name in ns["models"]]
        models.update({c.model_name: c for c in configs})
    return models


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweeps_train_what_the_notebooks_would(sweep):
    """Each train line lands in <run>/models/<name> with the config notebooks 04/07 would use there
    (given the seed or lam the header says to pass with --set), so they find it finished instead of
    refusing it."""
    runs = _sweep_runs(sweep)
    stated = re.search(r"--array=0-(\d+)", sweep.read_text())
    assert stated and int(stated.group(1)) == len(runs) - 1, "the header's --array must cover the lines"
    for kind, config_path, run_dir, *rest in runs:
        assert kind == "train" and rest[::2] == ["--set"] * (len(rest) // 2)
        assert Path(run_dir).parent.name == "runs", "a train line names a workbook run folder"
        overrides = parse_overrides(rest[1::2])
        config = TrainConfig.from_yaml(PROJECT_ROOT / config_path, overrides)
        study = {k: v for k, v in overrides.items() if k in ("seed", "lam")}  # passed to notebooks with --set
        expected = _notebook_models(Path(config_path).stem, study)[config.model_name]
        assert {k: config.to_dict()[k] for k in FIT_KEYS} == {k: expected.to_dict()[k] for k in FIT_KEYS}


# ------------------------------------------------------------------------------------------ environment
def test_project_venv_is_activated(job):
    (job.root / ".venv" / "bin").mkdir(parents=True)
    (job.root / ".venv" / "bin" / "activate").write_text("export FFN_FAKE_ENV=venv\n")
    rc, out = job.run("notebook.sbatch", "04", "params.yaml")
    assert rc == 0 and job.read("env") == "venv\n", out


@pytest.mark.parametrize("env, expected", [({}, "conda:ffn-workbook"), ({"FFN_CONDA_ENV": "mine"}, "conda:mine")])
def test_conda_env_is_activated(job, env, expected):
    (job.bin / "conda").write_text(FAKE_CONDA)
    (job.bin / "conda").chmod(0o755)
    if env:  # a named conda env wins over a project .venv
        (job.root / ".venv" / "bin").mkdir(parents=True)
        (job.root / ".venv" / "bin" / "activate").write_text("export FFN_FAKE_ENV=venv\n")
    rc, out = job.run("notebook.sbatch", "04", "params.yaml", **env)
    assert rc == 0 and job.read("env") == f"{expected}\n", out


# ------------------------------------------------------------------------------------------ the documentation
def _documented_sbatch_lines() -> list[list[str]]:
    import shlex

    text = (PROJECT_ROOT / "README.md").read_text().split("## On a cluster")[1].split("\n## ")[0]
    lines = re.findall(r"^(?:\w+=\$\()?sbatch (.+?)\)?$", text, re.M)
    return [shlex.split(line.split("  #")[0]) for line in lines]


def test_documented_sbatch_lines_name_existing_scripts_files_and_ranges():
    lines = _documented_sbatch_lines()
    assert len(lines) >= 10
    for words in lines:
        script = next(w for w in words if w.endswith(".sbatch"))
        assert (PROJECT_ROOT / script).is_file(), script
        args = words[words.index(script) + 1:]
        for arg in args:
            if arg.startswith(("configs/", "slurm/")):
                assert (PROJECT_ROOT / arg).is_file(), arg
        if script.endswith("sweep.sbatch"):  # the documented --array covers the sweep file's lines
            array = next(w for w in words if w.startswith("--array="))
            assert array == f"--array=0-{len(_sweep_runs(PROJECT_ROOT / args[0])) - 1}", words

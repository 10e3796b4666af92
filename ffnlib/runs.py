"""Run folders: the one place that knows where a run's files live.

Two kinds of folder, one name each:

    run_dir     a workbook run (`WorkbookRun`): the executed notebooks and their parameters, the
                models it trained, the TFD table and figures

        <run_dir>/NN_topic.ipynb, NN_topic.params.yaml     one executed notebook, its parameters
        <run_dir>/reproduce.json                           seconds per notebook of `reproduce`
        <run_dir>/models/<model_name>/                     one model_dir per trained model
        <run_dir>/ensembles/<name>/                        the evaluation cache of an ensemble of its models
        <run_dir>/tfd_table.csv, tfd_table.md, paper_tables.md, figures/

    model_dir   one trained model (`ModelRun`): its config, metrics, checkpoints, evaluation cache

        config.yaml                  the TrainConfig it trains with
        metrics.jsonl                one line per epoch; appended, flushed and fsynced
        checkpoints/last.pt          resume point (every epoch, every save_every_steps, on a stop)
        checkpoints/best.pt          by validation top-1 at the highest evaluated T
        checkpoints/final.pt         the finished model
        checkpoints/epoch_<N>.pt     kept when keep_epoch_checkpoints
        eval_<checkpoint>.csv        cached evaluation at each T, keyed by the checkpoint's id
        eval_<checkpoint>_per_class.csv
        train.pid                    the training process, while it runs (SLURM scripts signal it)
        .lock                        held (flock) by the process that trains or evaluates into it

A model_dir is locked while a process trains or evaluates into it: a second process gets a
`RunInUse` error naming the holder's pid and host. The lock is an advisory `fcntl.flock`, released
by the kernel when its process dies, so a killed run never blocks the next one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ffnlib.errors import UserError
from ffnlib.paths import PROJECT_ROOT, project_path, runs_dir

log = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("best", "final", "last")  # and epoch_<N>


class RunInUse(UserError):
    """Another process trains or evaluates into the model_dir (the message names it)."""


class RunFolderError(UserError):
    """A run folder that cannot be used as asked (a file in its place, not writable, nothing in it)."""


def check_checkpoint_name(name: str) -> str:
    if name not in CHECKPOINT_NAMES and not re.fullmatch(r"epoch_\d+", name):
        raise RunFolderError(f"checkpoint must be one of {CHECKPOINT_NAMES} or epoch_<N>, got {name!r}")
    return name


# ------------------------------------------------------------------------------------------ one model
@dataclass(frozen=True)
class ModelRun:
    """The folder of one trained model (`model_dir`)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:  # a ModelRun goes wherever a model_dir path does
        return str(self.root)

    @property
    def name(self) -> str:
        """The model's name in its workbook run (`model_name`: vanilla_16f, st_4f, ffn, ...)."""
        return self.root.name

    @property
    def run_dir(self) -> Path | None:
        """The workbook run this model belongs to (the folder above `models/`), or None."""
        return self.root.parent.parent if self.root.parent.name == "models" else None

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """`checkpoints/<name>.pt`, name being best, final, last or epoch_<N>."""
        return self.checkpoints / f"{check_checkpoint_name(name)}.pt"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def final(self) -> Path:
        return self.checkpoint("final")

    def epoch(self, n: int) -> Path:
        return self.checkpoint(f"epoch_{n}")

    def evaluation_cache(self, checkpoint: str) -> tuple[Path, Path]:
        """The cached evaluation of checkpoint `checkpoint`: the table and the per-class table."""
        check_checkpoint_name(checkpoint)
        return self.root / f"eval_{checkpoint}.csv", self.root / f"eval_{checkpoint}_per_class.csv"

    @property
    def pid(self) -> Path:
        """Holds the training process id while it runs, for SLURM scripts to signal it."""
        return self.root / "train.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def is_trained(self, checkpoint: str = "best") -> bool:
        return self.checkpoint(checkpoint).is_file()

    def clear(self) -> None:
        """Remove what this folder holds of an earlier model: checkpoints, metrics, evaluations, config
        (what `--restart` and a forced import replace); the lock and the folder itself stay."""
        log.warning("clearing %s (checkpoints, metrics, evaluations, config)", self.root)
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        for path in [self.metrics, self.config, *self.root.glob("eval_*.csv")]:
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- metrics
    def read_metrics(self) -> list[dict]:
        """The lines of `metrics.jsonl`, one dict per epoch. A torn last line (a crash while it was
        written) is dropped with a warning; a bad line elsewhere is an error naming it."""
        if not self.metrics.exists():
            return []
        data = self.metrics.read_bytes()
        lines = data.decode("utf-8").split("\n")
        complete = data.endswith(b"\n")
        out = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                if number == len(lines) and not complete:
                    log.warning("%s: dropping its torn last line %d (%s)", self.metrics, number, e)
                    continue
                raise RunFolderError(f"{self.metrics}, line {number}: not a JSON object ({e})") from None
        return out

    def append_metrics(self, line: dict) -> None:
        """Append one epoch's line, flushed and fsynced (a torn line is only possible at the very end,
        and `read_metrics` drops it). A file whose last line is torn is repaired first."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.metrics.read_bytes() if self.metrics.exists() else b""
        with open(self.metrics, "r+b" if data else "wb") as f:
            if data and not data.endswith(b"\n"):  # drop the torn tail before appending
                f.truncate(data.rfind(b"\n") + 1)
            f.seek(0, os.SEEK_END)
            f.write((json.dumps(line) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    # ---------------------------------------------------------------- use
    def check_usable(self) -> None:
        """Raise RunFolderError unless the folder is (or can become) a writable directory."""
        if self.root.exists() and not self.root.is_dir():
            raise RunFolderError(f"{self.root} is a file, not a model folder: pass another folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise RunFolderError(f"cannot write in {self.root} ({e.strerror or e}): pass a writable folder") from None

    @contextlib.contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """Hold the folder's lock for `purpose` ("training", "evaluation"); RunInUse if another
        process holds it. Re-entrant in one process is not supported: take it once."""
        self.check_usable()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
                raise RunInUse(f"{self.root} is in use by {holder}: wait for it to finish or stop it "
                               f"(two processes must never train or evaluate into one model folder)") from None
            info = f"pid {os.getpid()} on {socket.gethostname()} ({purpose}, since {time.strftime('%F %T')})"
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode("utf-8"), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------ one workbook run
@dataclass(frozen=True)
class WorkbookRun:
    """A workbook run folder (`run_dir`): executed notebooks, `models/`, the TFD table, figures."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:  # a WorkbookRun goes wherever a run_dir path does
        return str(self.root)

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, model_name: str) -> ModelRun:
        """The model_dir of model `model_name` (vanilla_16f, st_4f, ffn, ...) in this run."""
        return ModelRun(self.models / _folder_name(model_name, "model", "ffn"))

    def trained_models(self, checkpoint: str = "best") -> list[ModelRun]:
        """Every model of this run that holds checkpoint `checkpoint`, by name."""
        check_checkpoint_name(checkpoint)
        if not self.models.is_dir():
            return []
        return [ModelRun(d) for d in sorted(self.models.iterdir()) if ModelRun(d).is_trained(checkpoint)]

    def ensemble(self, name: str) -> ModelRun:
        """The folder of ensemble `name` (ensemble_4-8-16): no checkpoints, its evaluation cache and lock."""
        return ModelRun(self.root / "ensembles" / _folder_name(name, "ensemble", "ensemble_4-8-16"))

    def notebook(self, stem: str) -> Path:
        return self.root / f"{stem}.ipynb"

    def parameters(self, stem: str) -> Path:
        return self.root / f"{stem}.params.yaml"

    @property
    def timings(self) -> Path:
        return self.root / "reproduce.json"

    @property
    def table_csv(self) -> Path:
        return self.root / "tfd_table.csv"

    @property
    def table_md(self) -> Path:
        return self.root / "tfd_table.md"

    @property
    def paper_tables(self) -> Path:
        return self.root / "paper_tables.md"

    @property
    def figures(self) -> Path:
        return self.root / "figures"


def _folder_name(name: str, what: str, example: str) -> str:
    """`name` if it names one folder (no path, not "." or ".."); else RunFolderError."""
    if not name or "/" in name or name in (".", ".."):
        raise RunFolderError(f"{what} name {name!r}: expected a folder name such as {example!r}")
    return name


def default_run_dir(profile: str | Path) -> Path:
    """`runs/<profile name>` (under `FFN_RUNS_DIR` if set): where a profile's run goes unless told."""
    return runs_dir() / Path(str(profile)).stem


def resolve_run_dir(run_dir: str | Path, profile: str = "demo") -> Path:
    """A notebook's `run_dir` parameter as a folder: "" means `runs/<profile>` (under `FFN_RUNS_DIR`
    if set), where `reproduce --profile <profile>` writes; a relative path is taken from the project
    root (not the working folder, which is notebooks/ under Jupyter and papermill)."""
    if run_dir:
        return project_path(run_dir).resolve()
    return default_run_dir(profile).resolve()


def resolve_run_dirs(run_dirs: Sequence[str | Path], default: str | Path,
                     root: str | Path = PROJECT_ROOT) -> list[Path]:
    """The workbook runs to collect: `run_dirs`, or `[default]` when it is empty.

    A relative entry is taken from `root` (the project root, whatever the notebook's working folder);
    an entry holding `*`, `?` or `[` is a glob pattern (runs/seed*), expanded in sorted order. Raises
    RunFolderError for an entry that names no folder.
    """
    if isinstance(run_dirs, (str, Path)):
        raise RunFolderError(f"run_dirs must be a list of folders, got the single value {str(run_dirs)!r}")
    found: list[Path] = []
    for entry in run_dirs or [default]:
        path = project_path(entry, root)
        if glob.has_magic(str(path)):
            matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_dir())
            if not matches:
                raise RunFolderError(f"run_dirs entry {str(entry)!r}: no folder matches {path}")
        elif path.is_dir():
            matches = [path]
        else:
            what = f"run_dirs entry {str(entry)!r}" if run_dirs else "run_dir"
            raise RunFolderError(f"{what}: no such run folder {path}")
        found += [m.resolve() for m in matches if m.resolve() not in found]
    return found

"""Stopping on request: SIGTERM or SIGUSR1 asks the training to save `last.pt` and stop.

The main process owns the stop: `StopRequest` records the signal and the loop acts on it at the next
step boundary (or validation batch), then raises `Preempted`; the command line exits with
REQUEUE_EXIT_CODE (75), which the SLURM scripts requeue on. DataLoader workers ignore both signals
(`ignore_stop_signals`, their `worker_init_fn`): a job-wide SIGTERM (SLURM's preemption sends it to
every process of the job) must not kill a worker before the main process has saved.
"""
from __future__ import annotations

import signal
import threading

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "stopped on request, state saved, run me again"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(RuntimeError):
    """Training stopped by SIGTERM/SIGUSR1 after saving `last.pt`; running again resumes."""

    exit_code = REQUEUE_EXIT_CODE


class StopRequest:
    """Set by SIGTERM/SIGUSR1 while installed; the loop checks `requested` at step boundaries."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """A DataLoader `worker_init_fn`: the worker ignores SIGTERM and SIGUSR1 (the main process stops
    the run and then ends its workers itself)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)

"""Timing for every benchmark: one clock, one way to repeat, one peak-memory probe, one max-batch search.

    lap(fn, device)             one call: wall seconds (the device synchronised before and after) and
                                this process's CPU seconds
    StepClock(device)           back-to-back steps without waiting for the device: marks on CUDA events
                                (the host clock on a CPU) and the process's CPU time at each mark
    best_of(measure, n, passes) each item's best time over several passes (as timeit keeps the best):
                                drops the tries another process interrupted, for figures per item
    interleaved(runs, steps)    several runs in rounds, one step of each per round, so that a load that
                                comes and goes hits them alike; medians, and the median ratio within a round
    PeakMemory(device)          peak allocated and reserved GPU memory over a stretch of work (CUDA only)
    search_max_batch(fits, ...) the largest batch for which `fits` holds: double, then bisect
    matmul_peak_tflops(device)  the best TFLOP/s of large matmuls, the peak of an MFU figure

Benchmarks print figures; nothing here asserts on time. On a shared machine the figures still move:
`best_of` and `interleaved` are the two ways the benchmarks make them hold up.
"""
from __future__ import annotations

import gc
import statistics
from dataclasses import dataclass
from time import perf_counter, process_time  # the clocks (tests replace them here)
from typing import Any, Callable, Sequence

import numpy as np
import torch


def synchronize(device: torch.device | str | None) -> None:
    """Wait for the work queued on `device` (CUDA); nothing elsewhere."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Lap:
    """One timed call: wall seconds and this process's CPU seconds (with --threads 1 on a CPU, the
    call's own compute, which a busy machine disturbs less than the wall clock)."""

    wall: float
    cpu: float
    result: Any = None


def lap(fn: Callable[[], Any], device: torch.device | str | None = None) -> Lap:
    """Time one call of `fn()`; on CUDA the device is synchronised before and after, so the wall time
    covers the work the call queued."""
    synchronize(device)
    start, start_cpu = perf_counter(), process_time()
    result = fn()
    synchronize(device)
    return Lap(perf_counter() - start, process_time() - start_cpu, result)


class StepClock:
    """Per-step intervals of steps run back to back: CUDA events recorded on the stream (marking never
    waits for the device), the host clock on a CPU; and this process's CPU time at each mark."""

    def __init__(self, device: torch.device | str):
        self.cuda = torch.device(device).type == "cuda"
        self.marks: list = []
        self.cpu: list[float] = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(perf_counter())
        self.cpu.append(process_time())

    def intervals(self) -> list[float]:
        """Wall seconds between consecutive marks (waits for the device once, on CUDA)."""
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self.marks, self.marks[1:])]
        return [b - a for a, b in zip(self.marks, self.marks[1:])]

    def cpu_intervals(self) -> list[float]:
        """This process's CPU seconds between consecutive marks."""
        return [b - a for a, b in zip(self.cpu, self.cpu[1:])]


def best_of(measure: Callable[[int], float | Sequence[float]], num_items: int, passes: int) -> np.ndarray:
    """(num_items, k) seconds: for each item, the smallest of `passes` measurements, element by element.

    `measure(i)` times item i and returns its seconds, or k of them (several things timed back to back
    on the same item, such as two views of one sample, or the stages of one sample). Passes go over all
    items in turn, so that a disturbance spreads over items instead of hitting one item's every try.
    """
    best = None
    for _ in range(passes):
        for i in range(num_items):
            seconds = np.atleast_1d(np.asarray(measure(i), dtype=float))
            if best is None:
                best = np.full((num_items, seconds.size), np.inf)
            best[i] = np.minimum(best[i], seconds)
    if best is None:
        raise ValueError("best_of needs at least one item and one pass")
    return best


@dataclass
class Rounds:
    """What `interleaved` measured: per run, the wall and CPU seconds of each timed step."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def medians(self, clock: str = "wall") -> dict[str, float]:
        return {name: statistics.median(times) for name, times in getattr(self, clock).items()}

    def ratios(self, reference: str, clock: str = "wall") -> dict[str, float]:
        """Per run, the median over rounds of (its step / the reference's step in the same round)."""
        times = getattr(self, clock)
        return {name: statistics.median(a / b for a, b in zip(t, times[reference])) for name, t in times.items()}


def interleaved(runs: dict[str, Callable[[], Any]], steps: int, warmup: int = 0,
                device: torch.device | str | None = None, before_each: Callable[[str], Any] | None = None) -> Rounds:
    """Run every entry of `runs` once per round, `warmup + steps` rounds, and time the last `steps`
    (each call a `lap`). `before_each(name)`, untimed, prepares a call (zeroing gradients, say)."""
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + steps):
        for name, fn in runs.items():
            if before_each is not None:
                before_each(name)
            timed = lap(fn, device)
            if i >= warmup:
                wall[name].append(timed.wall)
                cpu[name].append(timed.cpu)
    return Rounds(wall, cpu)


class PeakMemory:
    """Peak allocated and reserved memory of `device` (bytes) over the `with` block; None off CUDA.
    The peak statistics are reset on entry, so what ran before (cudnn autotuning, say) is left out."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.allocated: int | None = None
        self.reserved: int | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda" and exc[0] is None:
            synchronize(self.device)
            self.allocated = torch.cuda.max_memory_allocated(self.device)
            self.reserved = torch.cuda.max_memory_reserved(self.device)


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_device_memory() -> None:
    """Collect garbage and hand cached GPU memory back (after a step cut short by running out of it)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def search_max_batch(fits, start: int, limit: int, resolution: int = 1) -> tuple[int, dict]:
    """Largest batch in [1, limit] for which `fits(batch)` is true, assuming fitting is monotone.

    `fits(b)` returns a truthy result (kept for the answer) or None/False. Doubles from `start` until
    a batch does not fit (or `limit`), then bisects until the bracket is at most `resolution` wide.
    Starting from a batch that does not fit, bisects below it. Returns (0, {}) when even 1 does not fit.
    Also returns every result by batch size.
    """
    tried: dict[int, object] = {}

    def ok(b: int) -> bool:
        if b not in tried:
            tried[b] = fits(b) or None
        return tried[b] is not None

    low, high = 0, limit + 1  # low fits (0: nothing known), high does not
    b = min(start, limit)
    while b <= limit:
        if ok(b):
            low = b
            if b == limit:
                break
            b = min(2 * b, limit)
        else:
            high = b
            break
    while high - low > (resolution if low >= resolution else 1):  # exact below `resolution`
        mid = (low + high) // 2
        if ok(mid):
            low = mid
        else:
            high = mid
    return low, {b: r for b, r in tried.items() if r is not None}


def matmul_peak_tflops(device: torch.device) -> tuple[float, str]:
    """Best TFLOP/s of large square matmuls: bf16 on CUDA (the tensor-core dense peak), fp32 on a CPU;
    and what was multiplied."""
    if device.type == "cuda":
        dtype, sizes, repeats = torch.bfloat16, (4096, 8192, 16384), 20
    else:
        dtype, sizes, repeats = torch.float32, (512, 1024), 5
    best, best_n = 0.0, 0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        def multiply(a=a, b=b):
            for _ in range(repeats):
                torch.mm(a, b)  # each product dropped at once: only a and b stay in memory

        for _ in range(3):  # warm-up: cuBLAS heuristics, clocks
            torch.mm(a, b)
        for _ in range(3):
            seconds = lap(multiply, device).wall
            tflops = 2 * n**3 * repeats / seconds / 1e12
            if tflops > best:
                best, best_n = tflops, n
        del a, b, multiply
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return best, f"{str(dtype).removeprefix('torch.')} matmul {best_n}x{best_n}"

"""The benchmarks' shared timing (ffnlib.bench.timing), on clocks the tests drive: which calls are timed,
in which order, and what is kept of the times. Nothing here measures speed."""
import itertools

import numpy as np
import pytest
import torch

from ffnlib.bench import timing


@pytest.fixture
def clocks(monkeypatch):
    """A wall clock that advances by the next of `clocks.steps` at every reading (then by 1), and a CPU
    clock that advances by a tenth of that."""

    class Clocks:
        steps: list = []

        def __init__(self):
            self.wall = 0.0

        def perf_counter(self):
            self.wall += self.steps.pop(0) if self.steps else 1.0
            return self.wall

        def process_time(self):
            return self.wall / 10

    fake = Clocks()
    monkeypatch.setattr(timing, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(timing, "process_time", fake.process_time)
    return fake


def test_lap_times_one_call_and_keeps_its_result(clocks):
    calls = []
    clocks.steps = [0.0, 2.5]  # the start reading, then 2.5 s later the end
    timed = timing.lap(lambda: calls.append("ran") or 42, torch.device("cpu"))
    assert calls == ["ran"] and timed.result == 42
    assert timed.wall == 2.5 and timed.cpu == pytest.approx(0.25)


def test_step_clock_gives_the_intervals_between_marks(clocks):
    clock = timing.StepClock("cpu")
    clocks.steps = [0.0, 1.0, 3.0, 0.5]
    for _ in range(4):
        clock.mark()
    assert clock.intervals() == [1.0, 3.0, 0.5]
    assert clock.cpu_intervals() == pytest.approx([0.1, 0.3, 0.05])


def test_best_of_keeps_each_items_smallest_time_over_the_passes():
    calls = []
    # what each call measures, in call order: pass 0 item 0, pass 0 item 1, pass 1 item 0, pass 1 item 1
    measured = iter([[3.0, 9.0], [5.0, 1.0], [2.0, 8.0], [6.0, 0.5]])

    def measure(i):
        calls.append(i)
        return next(measured)

    best = timing.best_of(measure, num_items=2, passes=2)
    assert calls == [0, 1, 0, 1]  # passes over all items in turn, not one item's tries back to back
    np.testing.assert_array_equal(best, [[2.0, 8.0], [5.0, 0.5]])
    np.testing.assert_array_equal(timing.best_of(lambda i: 4.0 + i, 3, 1), [[4.0], [5.0], [6.0]])
    with pytest.raises(ValueError, match="at least one item"):
        timing.best_of(lambda i: 1.0, 0, 3)


def test_interleaved_runs_one_step_of_each_per_round_and_keeps_the_rounds_after_the_warmup(clocks):
    order = []
    # per round: vanilla 1 s then ffn 2 s, except the warm-up (10 s each) and a disturbed round 3 (both x4)
    walls = [10, 10, 1, 2, 1, 2, 4, 8, 1, 2]
    clocks.steps = list(itertools.chain.from_iterable((0.0, w) for w in walls))  # each lap: a start, an end
    rounds = timing.interleaved({"vanilla": lambda: order.append("v"), "ffn": lambda: order.append("f")},
                                steps=4, warmup=1, before_each=lambda name: order.append(f"prepare {name}"))
    assert order == ["prepare vanilla", "v", "prepare ffn", "f"] * 5
    assert rounds.wall == {"vanilla": [1, 1, 4, 1], "ffn": [2, 2, 8, 2]}
    assert rounds.medians() == {"vanilla": 1.0, "ffn": 2.0}
    assert rounds.ratios("vanilla") == {"vanilla": 1.0, "ffn": 2.0}  # the disturbed round's ratio is 2 too
    assert rounds.cpu["ffn"] == pytest.approx([0.2, 0.2, 0.8, 0.2])


def test_peak_memory_is_none_off_cuda():
    with timing.PeakMemory(torch.device("cpu")) as memory:
        torch.zeros(1000)
    assert memory.allocated is None and memory.reserved is None


def test_out_of_memory_errors_are_recognised():
    assert timing.is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert timing.is_oom(RuntimeError("CUDA error: out of memory"))
    assert not timing.is_oom(RuntimeError("shape mismatch"))


@pytest.mark.parametrize("limit_fits, start, resolution, expected", [
    (100, 32, 1, 100),  # doubles 32, 64, 128 (no), then bisects to the exact edge
    (100, 32, 8, range(93, 101)),  # stops once the bracket is 8 wide
    (5, 32, 8, 5),  # the start does not fit: bisects below it, exactly below the resolution
    (0, 32, 8, 0),  # nothing fits
    (10_000, 32, 8, 4096),  # everything fits: the limit
])
def test_search_max_batch_finds_the_edge(limit_fits, start, resolution, expected):
    tried = []

    def fits(b):
        tried.append(b)
        return b * 1.5 if b <= limit_fits else None

    best, results = timing.search_max_batch(fits, start, 4096, resolution)
    assert best in expected if isinstance(expected, range) else best == expected
    assert len(tried) == len(set(tried))  # no batch tried twice
    assert results == {b: b * 1.5 for b in tried if b <= limit_fits}
    assert all(b <= 4096 for b in tried)

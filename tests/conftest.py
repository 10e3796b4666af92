"""Shared fixtures: a tiny built-in dataset made once per test session."""
from __future__ import annotations

import pytest
import torch

from ffnlib import synthetic

# Small enough to write in a few seconds, large enough for a few batches of every recipe.
TINY_DATA = dict(num_classes=8, num_train=48, num_val=16, min_frames=20, max_frames=28)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Root of a tiny built-in dataset in the SSv2 layout."""
    return synthetic.prepare(tmp_path_factory.mktemp("tiny_builtin") / "data", seed=0, num_workers=1, **TINY_DATA)


@pytest.fixture
def torch_state():
    """Restore torch's global settings that `fit` may change (threads, determinism)."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)

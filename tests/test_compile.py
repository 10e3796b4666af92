"""`TrainConfig.compile`: torch.compile (inductor) gives the eager model's outputs and gradients.

torch 2.13's inductor on a CPU gave NaN for a TSM at T = 2 in a training graph while the temporal
shift wrote into a fresh `empty_like` buffer; the shift now starts from a copy of its input.
"""
import copy
import shutil

import pytest
import torch

from ffnlib.models import create_model

pytestmark = pytest.mark.slow  # `make test-unit` leaves it out; `make test` runs it


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="inductor builds C++ on a CPU and no C++ compiler is installed")
@pytest.mark.parametrize("num_frames", [2, 4])
def test_a_compiled_tsm_trains_as_the_eager_one(num_frames):
    torch.manual_seed(0)
    eager = create_model("tsm_small", 3, dropout=0.0).train()
    compiled_copy = copy.deepcopy(eager)
    compiled = torch.compile(compiled_copy)
    x = torch.randn(2, 3, num_frames, 32, 32)
    out_eager, out_compiled = eager(x), compiled(x)
    torch.testing.assert_close(out_compiled, out_eager, rtol=1e-4, atol=1e-5)
    out_eager.square().sum().backward()
    out_compiled.square().sum().backward()
    grads = dict(compiled_copy.named_parameters())
    for name, p in eager.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-3, atol=1e-6, msg=name)

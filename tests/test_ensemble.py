"""Ensemble: the mean of the members' probabilities (not of their logits), every member fed the same
clip, parameters and FLOPs the members' sum, clear errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ffnlib.models import Ensemble, create_model, flops, num_parameters, parameter_table

TINY = dict(layers=(1, 1, 1, 1), width=4, stem_channels=16, stem_kernel=3, stem_stride=2, stem_pool=False)


class Fixed(nn.Module):
    """A member whose logits are given, the same for every video; records the clips it was fed."""

    def __init__(self, logits, num_classes=None):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32))
        self.seen = []
        if num_classes is not None:
            self.num_classes = num_classes

    def forward(self, x):
        self.seen.append(x)
        return self.logits.expand(x.shape[0], -1)  # (B, classes)


def clip(b, t, size=16, seed=0):
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed))  # (B, C, T, H, W)


def test_averages_probabilities_not_logits():
    # Member 0 is sure of class 0, member 1 leans to class 2: the mean probability picks class 0, the
    # mean logit would pick class 1.
    a, b = [3.0, 0.0, -10.0], [-10.0, 0.0, 1.0]
    out = Ensemble([Fixed(a), Fixed(b)])(torch.zeros(2, 3, 4, 8, 8))
    mean_prob = (F.softmax(torch.tensor(a), 0) + F.softmax(torch.tensor(b), 0)) / 2
    torch.testing.assert_close(out.exp(), mean_prob.expand(2, -1))
    torch.testing.assert_close(torch.logsumexp(out, dim=1), torch.zeros(2))  # a log-probability
    assert out.argmax(dim=1).tolist() == [0, 0]
    assert ((torch.tensor(a) + torch.tensor(b)) / 2).argmax().item() == 1
    # stable where a probability underflows: log(mean) of (1, 0) and (0, 1) is log(1/2), not -inf
    sure = Ensemble([Fixed([200.0, -200.0]), Fixed([-200.0, 200.0])])(torch.zeros(1, 3, 2, 8, 8))
    torch.testing.assert_close(sure, torch.full((1, 2), math.log(0.5)))


def test_every_member_sees_the_same_clip_at_its_t():
    torch.manual_seed(0)
    members = [create_model("tsm_resnet", num_classes=5, **TINY).eval() for _ in range(3)]
    ensemble = Ensemble(members).eval()
    for t in (2, 6, 16):
        x = clip(2, t, seed=t)
        expected = torch.log(torch.stack([F.softmax(m(x), dim=1) for m in members]).mean(dim=0))
        torch.testing.assert_close(ensemble(x), expected)
    spies = [Fixed([0.0, 1.0]), Fixed([1.0, 0.0])]
    x = clip(1, 6)
    Ensemble(spies)(x)
    assert all(len(s.seen) == 1 and s.seen[0] is x for s in spies)


def test_parameters_and_flops_are_the_members_sum():
    members = [create_model("tsm_resnet", num_classes=5, **TINY) for _ in range(2)]
    members.append(create_model("ffn_resnet", num_classes=5, **TINY))
    ensemble = Ensemble(members)
    assert num_parameters(ensemble) == sum(num_parameters(m) for m in members)
    for t in (4, 6):
        assert flops(ensemble, t, 16) == pytest.approx(sum(flops(m, t, 16) for m in members))
    st = Ensemble([create_model("tsm_small", num_classes=8) for _ in range(3)])
    assert (st.num_classes, st.in_channels) == (8, 3)
    assert flops(st, 8, 32) == pytest.approx(3 * flops("tsm_small", 8, 32, num_classes=8))
    table = {row["part"]: row for row in parameter_table(st)}
    assert table["conv"]["copies"] == 3 and table["fc"]["sharing"] == "private"
    assert sum(row["total"] for row in table.values()) == num_parameters(st) == 3 * 130_056


def test_train_and_eval_reach_every_member():
    ensemble = Ensemble([create_model("tsm_resnet", num_classes=5, **TINY) for _ in range(2)])
    ensemble.eval()
    assert not any(m.training for m in ensemble.modules())
    ensemble.train()
    assert all(m.training for m in ensemble.modules())


def test_what_it_cannot_average_is_a_clear_error():
    with pytest.raises(ValueError, match="non-empty list of member models"):
        Ensemble([])
    with pytest.raises(ValueError, match="member 1: expected a torch model"):
        Ensemble([Fixed([0.0]), "model"])
    with pytest.raises(ValueError, match="disagree on num_classes: member 0: 5, member 1: 8"):
        Ensemble([Fixed([0.0] * 5, num_classes=5), Fixed([0.0] * 8, num_classes=8)])
    with pytest.raises(ValueError, match=r"member 1 returned logits of shape \(1, 3\).*\(1, 2\) as member 0"):
        Ensemble([Fixed([0.0, 1.0]), Fixed([0.0, 1.0, 2.0])])(torch.zeros(1, 3, 2, 8, 8))
    with pytest.raises(ValueError, match="takes one clip"):
        Ensemble([Fixed([0.0, 1.0])])([torch.zeros(1, 3, 2, 8, 8)])
    with pytest.raises(ValueError, match="networks \\[1\\] differ"):
        parameter_table(Ensemble([create_model("tsm_small", 8), create_model("tsm_medium", 8)]))

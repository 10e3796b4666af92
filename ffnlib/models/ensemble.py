"""Ensemble: several video models as one predictor that averages their class probabilities.

The paper's Table 1 "Ensemble" baseline: the separated-training models (TSMs trained at 4, 8 and 16
frames) all fed the same clip, at the clip's T, their softmax probabilities averaged. It costs the
members' parameters and compute together (3x a TSM for three members).

`Ensemble(members)(x)`, x (B, C, T, H, W) float at any T: log of the mean probability (B, classes),
`log(mean_i softmax(member_i(x)))`. It is a log-probability, so it plugs into code that expects
logits: its softmax is the mean probability, and argmax and top-k are those of the mean probability
(averaging logits instead would weigh a confident member more). Cross-entropy on it is the negative
log of the mean probability of the target.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Ensemble(nn.Module):
    """Averages the class probabilities of `members` (models taking a clip (B, C, T, H, W) and returning
    logits (B, num_classes)), each fed the same clip; `members[i]` is `self.members[i]`.

    `num_classes` and `in_channels` are the members' (they must agree where the members have them).
    A multi-clip list is refused: every member sees the one clip.
    """

    def __init__(self, members: Sequence[nn.Module]):
        members = list(members) if isinstance(members, (list, tuple, nn.ModuleList)) else None
        if not members:
            raise ValueError("Ensemble needs a non-empty list of member models")
        for i, member in enumerate(members):
            if not isinstance(member, nn.Module):
                raise ValueError(f"Ensemble member {i}: expected a torch model (nn.Module), got {type(member).__name__}")
        super().__init__()
        self.members = nn.ModuleList(members)
        self.num_classes = self._common("num_classes")
        self.in_channels = self._common("in_channels")

    def _common(self, attribute: str):
        values = {i: getattr(m, attribute) for i, m in enumerate(self.members) if hasattr(m, attribute)}
        if len(set(values.values())) > 1:
            raise ValueError(f"Ensemble members disagree on {attribute}: "
                             + ", ".join(f"member {i}: {v}" for i, v in values.items()))
        return next(iter(values.values()), None)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ValueError(f"Ensemble takes one clip (B, C, T, H, W), fed to every member; got {type(x).__name__}")
        log_probs = []
        for i, member in enumerate(self.members):
            logits = member(x)  # (B, classes)
            if logits.dim() != 2 or (log_probs and logits.shape != log_probs[0].shape):
                raise ValueError(f"Ensemble member {i} returned logits of shape {tuple(logits.shape)}; expected "
                                 f"(B, classes)" + (f" = {tuple(log_probs[0].shape)} as member 0" if log_probs else ""))
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()  # the log-sum-exp below in float32
            log_probs.append(F.log_softmax(logits, dim=1))
        # log(mean_i p_i) = logsumexp_i(log p_i) - log M, stable where a p_i underflows.
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))  # (M, B, K) -> (B, K)

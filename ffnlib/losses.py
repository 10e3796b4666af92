"""Temporal distillation, FFN's loss: the largest frame count teaches the smaller ones.

    L = CE(z_teacher, y) + lam * sum_s KL(p_teacher || p_s)

with each KL computed as `F.kl_div(F.log_softmax(z_s), F.softmax(z_teacher.detach()), "batchmean")`:
no temperature, and the teacher is detached, so it learns from the cross-entropy only and the
students (no cross-entropy of their own) from the KL only. Logits are (B, num_classes).
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import torch.nn.functional as F
from torch import Tensor


class DistillationLoss(NamedTuple):
    """The loss to back-propagate (`total`) and its parts for logging: `ce` on the teacher, and one
    KL per student, in the order the students were given."""

    total: Tensor
    ce: Tensor
    kl: tuple[Tensor, ...]

    def as_floats(self, student_names: Sequence[str] | None = None) -> dict[str, float]:
        """{"loss", "ce", "kl_<name>"...} as Python floats (names default to 0, 1, ...)."""
        names = list(student_names) if student_names is not None else [str(i) for i in range(len(self.kl))]
        if len(names) != len(self.kl):
            raise ValueError(f"{len(names)} student names for {len(self.kl)} KL terms")
        return {"loss": self.total.item(), "ce": self.ce.item(),
                **{f"kl_{name}": kl.item() for name, kl in zip(names, self.kl)}}


def teacher_probs(teacher_logits: Tensor) -> Tensor:
    """The teacher's class probabilities (B, num_classes), detached: no gradient reaches the teacher."""
    return F.softmax(teacher_logits.detach(), dim=1)


def distillation_kl(student_logits: Tensor, probs: Tensor) -> Tensor:
    """KL(p_teacher || p_student), averaged over the batch; `probs` from `teacher_probs`."""
    return F.kl_div(F.log_softmax(student_logits, dim=1), probs, reduction="batchmean")


def distillation_total(ce: Tensor, kl: Sequence[Tensor], lam: float = 1.0) -> Tensor:
    """CE + lam * sum of the KL terms (the CE alone when there are none)."""
    return ce + lam * sum(kl) if kl else ce


def temporal_distillation(teacher_logits: Tensor, student_logits: Sequence[Tensor], target: Tensor,
                          lam: float = 1.0) -> DistillationLoss:
    """CE(teacher, target) + lam * sum of KL(softmax(teacher) || softmax(student)), teacher detached.

    teacher_logits, each student's logits: (B, num_classes); target: (B,) class indices.
    With no students this is the plain cross-entropy.
    """
    if teacher_logits.dim() != 2:
        raise ValueError(f"teacher logits must be (B, num_classes), got shape {tuple(teacher_logits.shape)}")
    for i, student in enumerate(student_logits):
        if student.shape != teacher_logits.shape:
            raise ValueError(f"student {i} logits have shape {tuple(student.shape)}, the teacher's "
                             f"{tuple(teacher_logits.shape)}: they must match (B, num_classes)")
    if target.shape != teacher_logits.shape[:1]:
        raise ValueError(f"target must be (B,) = {tuple(teacher_logits.shape[:1])} class indices, "
                         f"got shape {tuple(target.shape)}")
    ce = F.cross_entropy(teacher_logits, target)
    probs = teacher_probs(teacher_logits)
    kl = tuple(distillation_kl(student, probs) for student in student_logits)
    return DistillationLoss(distillation_total(ce, kl, lam), ce, kl)


def temporal_distillation_by_count(logits_by_count: Mapping[int, Tensor], target: Tensor,
                                   lam: float = 1.0) -> DistillationLoss:
    """`temporal_distillation` with the largest frame count as teacher and the others, in ascending
    order of count, as students: {4: z4, 8: z8, 16: z16} gives kl = (KL(p16||p4), KL(p16||p8))."""
    if not logits_by_count:
        raise ValueError("logits_by_count is empty: expected {num_frames: logits (B, num_classes)}")
    counts = sorted(logits_by_count)
    return temporal_distillation(logits_by_count[counts[-1]], [logits_by_count[c] for c in counts[:-1]],
                                 target, lam)

import pytest
import torch
import torch.nn.functional as F

from ffnlib.losses import DistillationLoss, temporal_distillation, temporal_distillation_by_count


def logits(seed, b=4, k=6, requires_grad=True):
    z = torch.randn(b, k, generator=torch.Generator().manual_seed(seed), dtype=torch.double)
    return z.requires_grad_(requires_grad)


def kl_by_hand(teacher, student):
    p, log_p, log_q = teacher.softmax(1), teacher.log_softmax(1), student.log_softmax(1)
    return (p * (log_p - log_q)).sum(1).mean()  # KL(p_teacher || p_student), mean over the batch


def test_value_is_ce_plus_lam_times_the_kl_sum():
    teacher, s4, s8 = logits(0), logits(1), logits(2)
    target = torch.tensor([0, 5, 2, 2])
    for lam in (1.0, 0.3):
        out = temporal_distillation(teacher, [s4, s8], target, lam=lam)
        ce = -teacher.log_softmax(1)[torch.arange(4), target].mean()
        torch.testing.assert_close(out.ce, ce)
        torch.testing.assert_close(out.kl[0], kl_by_hand(teacher, s4))
        torch.testing.assert_close(out.kl[1], kl_by_hand(teacher, s8))
        torch.testing.assert_close(out.total, ce + lam * (kl_by_hand(teacher, s4) + kl_by_hand(teacher, s8)))


def test_teacher_gets_no_gradient_from_the_kl_terms():
    teacher, s4, s8 = logits(0), logits(1), logits(2)
    target = torch.tensor([0, 5, 2, 2])
    out = temporal_distillation(teacher, [s4, s8], target)
    sum(out.kl).backward(retain_graph=True)
    assert teacher.grad is None
    assert s4.grad.abs().sum() > 0 and s8.grad.abs().sum() > 0
    s4.grad = s8.grad = None
    out.total.backward()
    expected, = torch.autograd.grad(F.cross_entropy(teacher, target), teacher)
    torch.testing.assert_close(teacher.grad, expected)  # the teacher learns from CE only
    # the students learn from their KL only (no CE of their own): zero gradient when they agree with the teacher
    agree = teacher.detach().clone().requires_grad_(True)
    temporal_distillation(teacher, [agree], target).total.backward()
    torch.testing.assert_close(agree.grad, torch.zeros_like(agree), atol=1e-12, rtol=0)


def test_no_students_is_cross_entropy():
    teacher, target = logits(0), torch.tensor([1, 1, 0, 3])
    out = temporal_distillation(teacher, [], target)
    assert out.kl == () and torch.equal(out.total, out.ce)
    torch.testing.assert_close(out.ce, F.cross_entropy(teacher, target))


def test_by_count_takes_the_largest_count_as_teacher():
    z = {16: logits(0), 4: logits(1), 8: logits(2)}
    target = torch.tensor([0, 1, 2, 3])
    out = temporal_distillation_by_count(z, target)
    torch.testing.assert_close(out.ce, F.cross_entropy(z[16], target))
    torch.testing.assert_close(out.kl[0], kl_by_hand(z[16], z[4]))
    torch.testing.assert_close(out.kl[1], kl_by_hand(z[16], z[8]))
    assert out.as_floats(["4", "8"]).keys() == {"loss", "ce", "kl_4", "kl_8"}
    assert out.as_floats()["loss"] == pytest.approx(out.total.item())


def test_is_a_named_tuple_for_unpacking():
    total, ce, kl = temporal_distillation(logits(0), [logits(1)], torch.tensor([0, 1, 2, 3]))
    assert isinstance(kl, tuple) and len(kl) == 1 and total.dim() == 0 and ce.dim() == 0
    assert DistillationLoss._fields == ("total", "ce", "kl")


@pytest.mark.parametrize("teacher,students,target,match", [
    (logits(0), [logits(1, b=3)], torch.tensor([0, 1, 2, 3]), r"student 0 logits have shape \(3, 6\)"),
    (logits(0), [logits(1, k=5)], torch.tensor([0, 1, 2, 3]), "must match"),
    (logits(0), [], torch.tensor([0, 1]), r"target must be \(B,\)"),
    (logits(0)[None], [], torch.tensor([0]), r"\(B, num_classes\)"),
])
def test_shape_errors(teacher, students, target, match):
    with pytest.raises(ValueError, match=match):
        temporal_distillation(teacher, students, target)

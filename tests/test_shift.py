import pytest
import torch

from ffnlib.models import TemporalShift, temporal_shift


def labelled(n, t, c, h=2, w=3):
    """Frames (N*T, C, H, W) whose every value says where it came from: 1 + 10000 n + 100 t + c."""
    n_, t_, c_ = torch.meshgrid(torch.arange(n), torch.arange(t), torch.arange(c), indexing="ij")
    values = (1 + 10000 * n_ + 100 * t_ + c_).double()
    return values[..., None, None].expand(n, t, c, h, w).reshape(n * t, c, h, w).clone()


def expected_shift(x, t, fold_div):
    """The specification, one element at a time."""
    nt, c, h, w = x.shape
    fold = c // fold_div
    x5, out = x.reshape(nt // t, t, c, h, w), torch.zeros(nt // t, t, c, h, w, dtype=x.dtype)
    for n in range(nt // t):
        for f in range(t):
            for ch in range(c):
                if ch < fold:
                    out[n, f, ch] = x5[n, f + 1, ch] if f + 1 < t else 0
                elif ch < 2 * fold:
                    out[n, f, ch] = x5[n, f - 1, ch] if f >= 1 else 0
                else:
                    out[n, f, ch] = x5[n, f, ch]
    return out.reshape(nt, c, h, w)


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 8, 16])
@pytest.mark.parametrize("c,fold_div", [(16, 8), (20, 8), (12, 4), (7, 8)])
def test_shift_matches_the_specification(t, c, fold_div):
    x = labelled(2, t, c)
    out = temporal_shift(x, t, fold_div)
    torch.testing.assert_close(out, expected_shift(x, t, fold_div), rtol=0, atol=0)


def test_shift_by_hand_fold_div_8():
    x = labelled(1, 4, 16)  # fold = 2
    out = temporal_shift(x, 4)[:, :, 0, 0]  # (T, C)
    assert out[0, 0] == 1 + 100 * 1 + 0 and out[2, 1] == 1 + 100 * 3 + 1  # [0, 2) from t+1
    assert (out[3, :2] == 0).all()  # last frame: nothing after it
    assert out[1, 2] == 1 + 100 * 0 + 2 and out[3, 3] == 1 + 100 * 2 + 3  # [2, 4) from t-1
    assert (out[0, 2:4] == 0).all()  # first frame: nothing before it
    assert torch.equal(out[:, 4:], x[:, 4:, 0, 0])  # the rest unchanged


def test_videos_do_not_mix():
    x = labelled(3, 4, 16)
    out = temporal_shift(x, 4)
    videos = out.reshape(3, 4, 16, 2, 3)
    for n in range(3):
        nonzero = videos[n][videos[n] != 0]
        assert ((nonzero - 1) // 10000 == n).all()


def test_module_equals_function_and_is_parameter_free():
    module = TemporalShift(fold_div=4)
    x = torch.randn(6, 8, 3, 3)
    assert list(module.parameters()) == []
    assert torch.equal(module(x, 3), temporal_shift(x, 3, 4))


def test_gradient_is_the_opposite_shift():
    x = torch.randn(8, 16, 2, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: temporal_shift(x, 4), (x,))
    assert torch.autograd.gradgradcheck(lambda x: temporal_shift(x, 4), (x,))


def test_input_is_not_modified():
    x = torch.randn(4, 16, 2, 2)
    before = x.clone()
    temporal_shift(x, 4)
    assert torch.equal(x, before)


@pytest.mark.parametrize("shape,t,match", [((6, 16, 2, 2), 4, "not a multiple of num_frames=4"),
                                           ((2, 3, 16, 2, 2), 3, r"\(N\*T, C, H, W\)"),
                                           ((4, 16, 2, 2), 0, "num_frames >= 1")])
def test_bad_input_is_a_clear_error(shape, t, match):
    with pytest.raises(ValueError, match=match):
        temporal_shift(torch.zeros(shape), t)


def test_channels_last_stays_channels_last_with_the_same_values():
    """A channels_last input must not come back in the default layout (every block's conv1 would copy it)."""
    x = torch.randn(2 * 4, 16, 5, 6)
    fast = x.to(memory_format=torch.channels_last).requires_grad_()
    out = temporal_shift(fast, num_frames=4)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, temporal_shift(x, num_frames=4), rtol=0, atol=0)
    out.backward(torch.ones_like(out))
    assert fast.grad.is_contiguous(memory_format=torch.channels_last)

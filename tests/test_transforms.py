import numpy as np
import pytest
import torch

from ffnlib.transforms import (
    MEAN,
    STD,
    ClipTransform,
    Crop,
    centre_crop_box,
    denormalize as to_frames,
    crop_size_pairs,
    fixed_offsets,
    normalize,
    resize,
    resize_shorter_side,
    sample_multiscale_crop,
    to_clips,
)

TRAIN = ClipTransform(train=True, frame_size=16, resize_size=16)


def coordinate_frames(num_frames=3, height=24, width=40):
    """(T, 3, H, W) uint8 whose channel 0 is the row, channel 1 the column, channel 2 the frame number."""
    rows = torch.arange(height, dtype=torch.uint8).view(1, height, 1).expand(num_frames, height, width)
    cols = torch.arange(width, dtype=torch.uint8).view(1, 1, width).expand(num_frames, height, width)
    time = torch.arange(num_frames, dtype=torch.uint8).view(num_frames, 1, 1).expand(num_frames, height, width)
    return torch.stack([rows, cols, time], dim=1).contiguous()  # (T, 3, H, W)


def denormalize(x):
    """float32 normalised (T, 3, H, W) -> the 0..255 values it came from."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x * std + mean) * 255


# ---- the multi-scale crop ----

def test_crop_sizes_for_ssv2_frames():
    # 427x240: int(240 * s) for s in (1, .875, .75, .66) = 240, 210, 180, 158; neighbours at most one step apart
    pairs = crop_size_pairs(240, 427)
    sizes = [240, 210, 180, 158]
    expected = {(sizes[i], sizes[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    assert set(pairs) == expected and len(pairs) == 10


def test_thirteen_fixed_offsets():
    # H=240, W=427, crop 180 x 210: steps (240-180)//4 = 15 rows, (427-210)//4 = 54 columns
    offsets = fixed_offsets(240, 427, 180, 210)
    assert offsets == [(0, 0), (0, 216), (60, 0), (60, 216), (30, 108),
                       (30, 0), (30, 216), (60, 108), (0, 108),
                       (15, 54), (15, 162), (45, 54), (45, 162)]
    with pytest.raises(ValueError, match="does not fit"):
        fixed_offsets(100, 100, 120, 50)


def test_multiscale_crop_draws_every_size_and_offset_uniformly():
    rng = np.random.default_rng(0)
    draws = [sample_multiscale_crop(240, 427, rng) for _ in range(4000)]
    sizes = {(c.height, c.width) for c in draws}
    assert sizes == set(crop_size_pairs(240, 427))
    for c in draws:
        assert 0 <= c.top and c.top + c.height <= 240 and 0 <= c.left and c.left + c.width <= 427
        assert (c.top, c.left) in fixed_offsets(240, 427, c.height, c.width)
    counts = np.unique([(c.height, c.width) for c in draws], axis=0, return_counts=True)[1]
    assert counts.min() > 4000 / 10 * 0.75  # 10 pairs, each about 400 times
    # one scale: a single 180 x 180 size, whose 13 positions are all distinct
    draws = [sample_multiscale_crop(240, 427, rng, scales=(0.75,)) for _ in range(2600)]
    slots = [fixed_offsets(240, 427, 180, 180).index((c.top, c.left)) for c in draws]
    assert np.bincount(slots, minlength=13).min() > 200 * 0.75  # each of 13 about 200 times


def test_crop_draw_comes_only_from_the_generator():
    a = [sample_multiscale_crop(240, 427, np.random.default_rng(3)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


# ---- one draw for all frames ----

def test_train_transform_uses_one_crop_for_every_frame():
    frames = coordinate_frames(num_frames=5)
    box = Crop(top=4, left=8, height=16, width=16)
    out = denormalize(TRAIN.apply(frames, box))  # same size: no resampling
    assert out.shape == (5, 3, 16, 16) and out.dtype == torch.float32
    rows = torch.arange(4, 20, dtype=torch.float32).view(16, 1).expand(16, 16)
    cols = torch.arange(8, 24, dtype=torch.float32).view(1, 16).expand(16, 16)
    for t in range(5):
        torch.testing.assert_close(out[t, 0], rows, atol=1e-3, rtol=0)
        torch.testing.assert_close(out[t, 1], cols, atol=1e-3, rtol=0)
        torch.testing.assert_close(out[t, 2], torch.full((16, 16), float(t)), atol=1e-3, rtol=0)


def test_clip_transform_shares_its_draw_across_frames():
    """Identical input frames must stay identical: a per-frame draw would crop them differently."""
    frames = coordinate_frames(num_frames=1, height=40, width=64).expand(12, 3, 40, 64)
    frames = frames.clone()
    transform = ClipTransform(train=True, frame_size=32, resize_size=36)
    outs = []
    for seed in range(20):
        out = transform(frames, np.random.default_rng(seed))
        assert out.shape == (12, 3, 32, 32)
        assert torch.equal(out, out[:1].expand_as(out))
        outs.append(out[0])
    assert len({tuple(o[:2, 0, 0].tolist()) for o in outs}) > 3  # while draws differ between samples


def test_resize_to_the_crop_changes_aspect_ratio_and_keeps_corners():
    frames = coordinate_frames(num_frames=1, height=40, width=64)
    out = denormalize(ClipTransform(train=True, frame_size=20, resize_size=20).apply(frames, Crop(0, 0, 40, 40)))
    assert out.shape == (1, 3, 20, 20)
    # a 2x antialiased downscale of a linear ramp: pixel k averages rows 2k-1..2k+2 (clamped)
    assert out[0, 0, :, 0].round().tolist()[1:-1] == pytest.approx([2 * k + 0.5 for k in range(1, 19)], abs=1)


# ---- test mode ----

def test_evaluation_resizes_the_shorter_side_then_centre_crops():
    frames = coordinate_frames(num_frames=2, height=24, width=40)
    resized = resize_shorter_side(frames, 48)
    assert resized.shape == (2, 3, 48, 80)  # int(48 * 40 / 24) = 80
    assert centre_crop_box(48, 80, 40) == Crop(4, 20, 40, 40)
    out = ClipTransform(train=False, frame_size=40, resize_size=48).apply(frames, None)
    assert out.shape == (2, 3, 40, 40)
    torch.testing.assert_close(out, normalize(resized[:, :, 4:44, 20:60], channel_dim=-3))
    tall = resize_shorter_side(coordinate_frames(1, 40, 24), 12)
    assert tall.shape == (1, 3, 20, 12)


def test_test_mode_is_deterministic_and_ignores_the_generator():
    frames = coordinate_frames(num_frames=2, height=30, width=50)
    transform = ClipTransform(train=False, frame_size=20, resize_size=24)
    a = transform(frames, np.random.default_rng(0))
    b = transform(frames, np.random.default_rng(1))
    assert torch.equal(a, b) and transform.draw(30, 50) is None


# ---- normalise and checks ----

def test_normalize_uses_imagenet_statistics():
    expected = torch.tensor([(0 / 255 - MEAN[0]) / STD[0], (128 / 255 - MEAN[1]) / STD[1],
                             (255 / 255 - MEAN[2]) / STD[2]])
    frames = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)  # (T, C, H, W)
    out = normalize(frames, channel_dim=-3)
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    assert out.dtype == torch.float32
    batch = frames.permute(1, 0, 2, 3)[None].expand(4, 3, 2, 2, 2)  # (B, C, T, H, W): channels at dim -4
    torch.testing.assert_close(normalize(batch)[3, :, 1, 0, 0], expected)


def float_clips_as_before(frames, positions):
    """The float path the data loader took before clips stayed uint8 (to_clips of commit cf62683):
    each frame converted into its place in float32, then `mul_(scale).sub_(shift)` per channel."""
    scale = 1.0 / (255.0 * torch.tensor(STD))
    shift = torch.tensor(MEAN) / torch.tensor(STD)
    clips = []
    for p in positions:
        clip = torch.empty((3, len(p), *frames.shape[2:]), dtype=torch.float32)  # (C, T_i, S, S)
        for t, i in enumerate(p):
            step = clip[:, t]
            step.copy_(frames[i])
            step.mul_(scale.view(3, 1, 1)).sub_(shift.view(3, 1, 1))
        clips.append(clip)
    return clips


def test_uint8_clips_normalised_later_equal_the_float_path_to_the_bit():
    """What the training loop now does (uint8 clips, collated, then one `normalize` per batch) gives
    exactly the numbers the float path gave: the same ops on the same float32 values."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8, generator=generator)
    frames = frames.contiguous(memory_format=torch.channels_last)  # as the resize leaves them
    positions = [[0, 2, 5, 5], [1, 2, 3, 4, 0, 5, 1, 3]]
    before = float_clips_as_before(frames, positions)
    after = [normalize(clip) for clip in to_clips(frames, positions)]  # one clip (C, T, S, S)
    assert all(torch.equal(a, b) for a, b in zip(after, before))
    batch = torch.stack([to_clips(frames, positions)[1]] * 3)  # (B, C, T, S, S) uint8, as collated
    assert torch.equal(normalize(batch), torch.stack([before[1]] * 3))
    assert set(frames.unique().tolist()) == set(range(256))  # every pixel value took both paths


def test_to_clips_gathers_and_moves_channels_first_as_uint8():
    frames = coordinate_frames(num_frames=5, height=6, width=7).contiguous(memory_format=torch.channels_last)
    positions = [np.array([4, 0]), np.array([1, 1, 3])]
    clips = to_clips(frames, positions)
    assert [c.shape for c in clips] == [(3, 2, 6, 7), (3, 3, 6, 7)]
    for clip, p in zip(clips, positions):
        assert clip.is_contiguous() and clip.dtype == torch.uint8
        assert torch.equal(clip, frames[torch.from_numpy(p)].permute(1, 0, 2, 3))
    # back to displayable frames (T, H, W, 3), exactly, from the uint8 clip and from its normalised copy
    np.testing.assert_array_equal(to_frames(clips[1]), frames[[1, 1, 3]].permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(to_frames(normalize(clips[1])), to_frames(clips[1]))


def test_to_clips_of_every_frame_in_order_is_one_copy_and_the_same_values():
    frames = coordinate_frames(num_frames=4, height=6, width=7).contiguous(memory_format=torch.channels_last)
    positions = [np.arange(4), np.array([0, 2]), np.arange(4)]
    clips = to_clips(frames, positions)
    for clip, p in zip(clips, positions):
        assert clip.is_contiguous() and torch.equal(clip, frames[torch.from_numpy(p)].permute(1, 0, 2, 3))
    assert clips[0].data_ptr() != clips[2].data_ptr()  # two clips never share memory


@pytest.mark.parametrize("train", [True, False])
def test_spatial_of_frames_cut_to_the_box_first_is_the_same(train):
    """The dataset views cut the crop box while converting to RGB (`spatial_cropped`); the pixels are
    those of `spatial` on whole frames."""
    transform = ClipTransform(train=train, frame_size=16, resize_size=20)
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (3, 24, 40, 3), dtype=torch.uint8, generator=generator).permute(0, 3, 1, 2)
    box = transform.draw(24, 40, np.random.default_rng(0))
    cut = frames if box is None else frames[(..., *box.slices)].contiguous(memory_format=torch.channels_last)
    assert torch.equal(transform.spatial_cropped(cut), transform.spatial(frames, box))


def test_resize_of_a_constant_image_stays_constant():
    frames = torch.full((2, 3, 30, 50), 77, dtype=torch.uint8)
    assert torch.equal(resize(frames, 17, 23), torch.full((2, 3, 17, 23), 77, dtype=torch.uint8))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="normalize expects uint8 pixels"):
        normalize(torch.zeros(3, 2, 4, 4))  # a float clip: normalised already?
    with pytest.raises(ValueError, match="normalize expects uint8 pixels"):
        normalize(torch.zeros(3, 4, 4, dtype=torch.uint8))  # no time axis
    with pytest.raises(ValueError, match=r"\(T, C, H, W\) uint8"):
        resize(np.zeros((2, 3, 4, 4), np.uint8), 2, 2)
    with pytest.raises(ValueError, match="colour channels in dim -4"):
        normalize(torch.zeros(2, 4, 4, 3, dtype=torch.uint8))  # channels last
    with pytest.raises(ValueError, match="resize_size"):
        ClipTransform(frame_size=224, resize_size=200)
    with pytest.raises(ValueError, match="Generator"):
        ClipTransform(train=True)(coordinate_frames())
    with pytest.raises(ValueError, match="does not fit"):
        centre_crop_box(20, 30, 24)

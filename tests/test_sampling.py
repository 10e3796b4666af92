import numpy as np
import pytest

from ffnlib.sampling import multi_segment_indices, segment_indices, centre_indices, train_indices, union


def official_val_indices(num_video_frames, num_frames):
    """The official TSM `_get_val_indices` formula (0-based, new_length 1), in floating point."""
    tick = num_video_frames / float(num_frames)
    return np.array([int(tick / 2.0 + tick * x) for x in range(num_frames)])


# ---- test mode: hand-computed segment centres ----

@pytest.mark.parametrize("n, t, expected", [
    (45, 16, [1, 4, 7, 9, 12, 15, 18, 21, 23, 26, 29, 32, 35, 37, 40, 43]),
    (48, 16, [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46]),
    (48, 4, [6, 18, 30, 42]),
    (45, 8, [2, 8, 14, 19, 25, 30, 36, 42]),
    (16, 16, list(range(16))),
    (3, 8, [0, 0, 0, 1, 1, 2, 2, 2]),  # N < T: centres repeat frames, every frame used
    (1, 4, [0, 0, 0, 0]),
    (5, 1, [2]),
])
def test_centres_hand_computed(n, t, expected):
    idx = centre_indices(n, t)
    assert idx.dtype == np.int64
    assert idx.tolist() == expected


@pytest.mark.parametrize("n", [17, 30, 45, 48, 61, 100, 251])
@pytest.mark.parametrize("t", [4, 8, 16])
def test_centres_match_official_formula_when_n_exceeds_t(n, t):
    np.testing.assert_array_equal(centre_indices(n, t), official_val_indices(n, t))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 15])
def test_short_videos_use_every_frame_in_order(n):
    idx = centre_indices(n, 16)
    assert len(idx) == 16 and np.all(np.diff(idx) >= 0)
    assert set(idx.tolist()) == set(range(n))


# ---- train mode ----

def test_train_n45_t16_draws_within_each_segment_of_two_frames():
    rng = np.random.default_rng(0)
    draws = np.stack([train_indices(45, 16, rng) for _ in range(200)])  # (200, 16)
    starts = 2 * np.arange(16)  # segment length 45 // 16 = 2; frames 32..44 are never drawn
    offsets = draws - starts
    assert draws.dtype == np.int64
    assert set(np.unique(offsets).tolist()) == {0, 1}
    # every segment sees both of its frames over 200 draws, about half the time each
    assert np.all((offsets == 1).mean(axis=0) > 0.3) and np.all((offsets == 1).mean(axis=0) < 0.7)


@pytest.mark.parametrize("n, t", [(48, 4), (48, 8), (48, 16), (61, 16), (17, 8)])
def test_train_stays_in_segments(n, t):
    rng = np.random.default_rng(1)
    seg = n // t
    for _ in range(50):
        idx = train_indices(n, t, rng)
        assert np.all(idx // seg == np.arange(t)), idx
        assert idx.max() < seg * t


def test_train_short_video_repeats_frames_deterministically():
    rng = np.random.default_rng(0)
    assert train_indices(3, 8, rng).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert train_indices(16, 16, rng).tolist() == list(range(16))


def test_train_is_reproducible_from_the_generator():
    a = train_indices(100, 16, np.random.default_rng(7))
    b = train_indices(100, 16, np.random.default_rng(7))
    c = train_indices(100, 16, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_train_needs_a_generator_and_valid_sizes():
    with pytest.raises(ValueError, match="Generator"):
        segment_indices(48, 8, train=True)
    with pytest.raises(ValueError, match="0 frames"):
        centre_indices(0, 8)
    with pytest.raises(ValueError, match="num_frames"):
        train_indices(48, 0, np.random.default_rng(0))


# ---- several frame counts ----

def test_multi_frame_sets_follow_the_given_order():
    sets = multi_segment_indices(48, (16, 4, 8), train=True, rng=np.random.default_rng(0))
    assert [len(s) for s in sets] == [16, 4, 8]
    sets = multi_segment_indices(48, train=False)
    assert [s.tolist() for s in sets] == [centre_indices(48, t).tolist() for t in (4, 8, 16)]


def test_multi_frame_sets_are_drawn_independently():
    """Nested sampling would make the 8F set a subset of the 16F set (and 4F of 8F) every time."""
    rng = np.random.default_rng(0)
    nested_8_in_16 = nested_4_in_8 = 0
    hits = []
    for _ in range(300):
        idx4, idx8, idx16 = multi_segment_indices(48, (4, 8, 16), train=True, rng=rng)
        nested_8_in_16 += set(idx8) <= set(idx16)
        nested_4_in_8 += set(idx4) <= set(idx8)
        # the 8F draw in segment k covers 16F segments 2k, 2k+1: does it pick the very frame drawn there?
        hits.append(np.mean([i in (idx16[2 * k], idx16[2 * k + 1]) for k, i in enumerate(idx8)]))
    assert nested_8_in_16 < 10 and nested_4_in_8 < 10
    # independent: P(8F frame is one of the two 16F frames in its span) = 2 / 6 (segments of 6 and 3)
    assert abs(np.mean(hits) - 1 / 3) < 0.05


def test_union_converts_each_frame_once_and_rebuilds_every_set():
    sets = [np.array([6, 18, 30, 42]), np.array([1, 6, 6, 19, 30]), np.array([0, 1])]
    frame_idx, positions = union(sets)
    assert frame_idx.tolist() == [0, 1, 6, 18, 19, 30, 42]
    for s, p in zip(sets, positions):
        assert p.dtype == np.int64
        np.testing.assert_array_equal(frame_idx[p], s)

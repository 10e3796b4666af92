import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ffnlib import display  # noqa: E402
from ffnlib.datasets import SSv2, VideoClips  # noqa: E402
from ffnlib.plots import data as data_plots  # noqa: E402
from ffnlib.plots.frames import FRAME_PX, time_strip, upscale  # noqa: E402


@pytest.fixture(scope="module")
def view(tiny_root):
    return VideoClips(SSv2(tiny_root, "train"), num_frames=8, train=True, frame_size=28, resize_size=32, seed=0)


def test_upscale_repeats_whole_pixels():
    frames = np.zeros((2, 28, 30, 3), dtype=np.uint8)  # (T, H, W, 3)
    frames[1, 5, 7] = 255  # a one-pixel dot
    big = upscale(frames)
    assert big.shape == (2, 28 * 4, 30 * 4, 3) and min(big.shape[1:3]) >= FRAME_PX
    assert (big[1, 20:24, 28:32] == 255).all() and big[1].sum() == 16 * 3 * 255  # a crisp 4x4 square
    assert upscale(np.zeros((1, 224, 224, 3), dtype=np.uint8)).shape == (1, 224, 224, 3)


def test_time_strip_places_frames_along_the_video_then_wraps():
    frames = np.arange(1, 5, dtype=np.uint8)[:, None, None, None] * np.ones((4, 16, 16, 3), np.uint8)  # (T, S, S, 3)
    strip, anchors = time_strip(frames, slots=8)
    assert strip.shape == (8 + 16, 8 * 16 + 7 * 2, 3)  # one band of labels, one line of frames
    assert [int(x) // 18 for x, _ in anchors] == [1, 3, 5, 7]  # at the segment centres (k + 1/2) / T
    strip, anchors = time_strip(np.repeat(frames, 3, axis=0), slots=8)  # T = 12: two lines
    assert strip.shape[0] == 2 * (8 + 16) and anchors[8][1] > anchors[7][1]


def test_figures_name_the_video_as_the_dropdown_does(view):
    label = display.video_label(view.source, 5)
    overview = data_plots.sample_overview(view, 5, 8, num_epochs=2)
    titles = [sub._suptitle.get_text() for sub in overview.subfigs if sub._suptitle is not None]
    assert titles[0].startswith(f"video {label}, T = 8")
    assert data_plots.view_timeline(view, 5, 2)._suptitle.get_text().startswith(f"video {label}:")
    grid = data_plots.video_grid(view.source, [5], 4)
    assert grid.subfigs[0]._suptitle.get_text().startswith(f"video {label}, ")


def test_sample_overview_frames_are_enlarged(view):
    fig = data_plots.sample_overview(view, 0, 8, num_epochs=2)
    images = [ax.images[0].get_array() for ax in fig.subfigs[1].axes if ax.images]
    assert len(images) == 8 and all(image.shape[:2] == (28 * 4, 28 * 4) for image in images)

import av
import numpy as np
import pytest

import os

from ffnlib.transforms import Crop
from ffnlib.video import VideoDecodeError, count_frames, decode_video, read_frames, temporary_path, write_video


def moving_square(num_frames=20, height=24, width=32):
    """Frames whose every pixel is known: a coloured square that moves one pixel per frame."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    frames[..., 2] = 40
    for t in range(num_frames):
        frames[t, 4:12, t % (width - 8) : t % (width - 8) + 8] = (200 + t % 50, 100, 7 * t % 256)
    return frames


@pytest.mark.parametrize("suffix", [".webm", ".mp4", ".avi"])
def test_lossless_round_trip_is_exact(tmp_path, suffix):
    frames = moving_square()
    path = write_video(tmp_path / f"clip{suffix}", frames, lossless=True)
    assert count_frames(path) == len(frames)
    idx = [0, 5, 5, 19, 3]
    np.testing.assert_array_equal(read_frames(path, idx), frames[idx])


@pytest.mark.parametrize("suffix", [".webm", ".mp4", ".avi"])
def test_lossy_round_trip_is_close(tmp_path, suffix):
    frames = moving_square(height=24, width=32)
    path = write_video(tmp_path / f"clip{suffix}", frames, crf=10)
    out = read_frames(path, range(len(frames)))
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frames).mean() < 6


def test_decoded_video_converts_only_what_is_asked(tmp_path):
    frames = moving_square()
    video = decode_video(write_video(tmp_path / "clip.webm", frames, lossless=True))
    assert (video.num_frames, video.height, video.width) == (20, 24, 32)
    np.testing.assert_array_equal(video.rgb([]), np.empty((0, 24, 32, 3), np.uint8))
    np.testing.assert_array_equal(video.rgb([7, 7]), frames[[7, 7]])


def test_decoded_video_keeps_only_the_box_when_given_one(tmp_path):
    frames = moving_square()
    video = decode_video(write_video(tmp_path / "clip.webm", frames, lossless=True))
    box = Crop(top=3, left=5, height=10, width=21)
    got = video.rgb([7, 2, 7], box)
    assert got.shape == (3, 10, 21, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, frames[[7, 2, 7], 3:13, 5:26])


def test_odd_size_lossy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="even frame sizes"):
        write_video(tmp_path / "odd.mp4", moving_square(height=23))


def _expect_error(path, cause):
    with pytest.raises(VideoDecodeError) as info:
        read_frames(path, [0])
    assert str(path) in str(info.value)
    assert cause in info.value.cause


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.webm", "does not exist")


def test_empty_file(tmp_path):
    (tmp_path / "empty.webm").write_bytes(b"")
    _expect_error(tmp_path / "empty.webm", "empty")


def test_garbage_file(tmp_path):
    (tmp_path / "junk.webm").write_bytes(np.random.default_rng(0).bytes(4000))
    _expect_error(tmp_path / "junk.webm", "not a readable video container")


@pytest.mark.parametrize("suffix", [".webm", ".mp4"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_file(tmp_path, suffix, keep):
    data = write_video(tmp_path / f"full{suffix}", moving_square(48), lossless=True).read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoDecodeError) as info:
        read_frames(cut, [0])
    assert str(cut) in str(info.value)


def test_corrupt_middle(tmp_path):
    data = bytearray(write_video(tmp_path / "full.webm", moving_square(48), lossless=True).read_bytes())
    data[len(data) // 3 : len(data) // 3 + 200] = b"\xab" * 200
    bad = tmp_path / "bad.webm"
    bad.write_bytes(bytes(data))
    _expect_error(bad, "corrupt or truncated")


def test_audio_only_file(tmp_path):
    path = tmp_path / "audio.webm"
    container = av.open(str(path), "w", format="webm")
    stream = container.add_stream("libopus", rate=48000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
    frame.sample_rate = 48000
    for packet in [*stream.encode(frame), *stream.encode()]:
        container.mux(packet)
    container.close()
    _expect_error(path, "no video stream")


def test_index_out_of_range(tmp_path):
    path = write_video(tmp_path / "clip.webm", moving_square(20), lossless=True)
    with pytest.raises(VideoDecodeError, match="frame index 20 out of range: the video has 20 frames"):
        read_frames(path, [0, 20])
    with pytest.raises(VideoDecodeError, match="frame index -1 out of range"):
        read_frames(path, [-1])


def test_the_temporary_name_is_this_process_s_and_keeps_the_container_suffix(tmp_path):
    tmp = temporary_path(tmp_path / "clip.webm")
    assert tmp == tmp_path / f".clip.webm.tmp-{os.getpid()}.webm"
    write_video(tmp_path / "clip.webm", moving_square(4), lossless=True)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.webm"]

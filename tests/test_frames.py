import numpy as np
import pytest
from PIL import Image

from ffnlib.transforms import Crop
from ffnlib.frames import check_template, decode_jpeg, frame_numbers, open_frame_folder, write_frames
from ffnlib.video import VideoDecodeError


def frames(num_frames=6, height=24, width=40):
    """Smooth frames (JPEG keeps them close): a horizontal ramp whose level says the frame number."""
    out = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    out[..., 0] = (30 * np.arange(num_frames)).reshape(-1, 1, 1)
    out[..., 1] = (5 * np.arange(width)).reshape(1, 1, -1)
    out[..., 2] = 128
    return out


def test_written_frames_read_back_close_and_as_pillow_decodes_them(tmp_path):
    video = frames()
    folder = write_frames(tmp_path / "v", video, "img_{:05d}.jpg")
    assert sorted(p.name for p in folder.iterdir()) == [f"img_{k:05d}.jpg" for k in range(1, 7)]
    opened = open_frame_folder(folder, "img_{:05d}.jpg")
    assert (opened.num_frames, opened.height, opened.width) == (6, 24, 40)
    rgb = opened.rgb([5, 0, 0, 3])
    assert rgb.shape == (4, 24, 40, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - video[[5, 0, 0, 3]]).mean() < 3
    pillow = np.asarray(Image.open(folder / "img_00006.jpg").convert("RGB"))
    np.testing.assert_array_equal(rgb[0], pillow)  # the same libjpeg-turbo decoding as Pillow's
    with pytest.raises(FileExistsError):
        write_frames(folder, video, "img_{:05d}.jpg")


def test_only_the_sampled_frames_are_decoded(tmp_path, monkeypatch):
    folder = write_frames(tmp_path / "v", frames(8))
    opened = open_frame_folder(folder, "{:05d}.jpg")
    read = []
    import ffnlib.frames as module

    real = module.decode_jpeg
    monkeypatch.setattr(module, "decode_jpeg", lambda path: read.append(path.name) or real(path))
    opened.rgb([1, 6, 6, 1])
    assert read == ["00002.jpg", "00007.jpg"]


def test_a_box_keeps_only_its_pixels(tmp_path):
    opened = open_frame_folder(write_frames(tmp_path / "v", frames(4)), "{:05d}.jpg")
    box = Crop(top=2, left=7, height=13, width=20)
    got = opened.rgb([3, 0, 3], box)
    assert got.shape == (3, 13, 20, 3)
    np.testing.assert_array_equal(got, opened.rgb([3, 0, 3])[:, 2:15, 7:27])


@pytest.mark.parametrize("template, bad", [("{:05d}", False), ("x{}.jpg", False), ("img.jpg", True),
                                           ("a/{:05d}.jpg", True), ("{:05d}_{:05d}.jpg", True), ("{x}.jpg", True)])
def test_templates(template, bad):
    if bad:
        with pytest.raises(ValueError, match="frame_template"):
            check_template(template)
    else:
        assert check_template(template) == template


def test_frame_numbers_ignore_other_files(tmp_path):
    for name in ("00001.jpg", "00002.jpg", "00010.jpg", "1.jpg", "flow_00001.jpg", "00003.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert frame_numbers(tmp_path, "{:05d}.jpg") == [1, 2, 10]


def _error(folder, template="{:05d}.jpg", num_frames=None, index=None):
    with pytest.raises(VideoDecodeError) as info:
        opened = open_frame_folder(folder, template, num_frames)
        opened.rgb([index])
    return info.value


def test_bad_frame_folders_fail_naming_the_folder_or_frame(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope").cause
    (tmp_path / "empty").mkdir()
    assert "the folder is empty" in _error(tmp_path / "empty").cause
    other = write_frames(tmp_path / "other", frames(3), "{:06d}.jpg")
    err = _error(other)
    assert "no frame named like '00001.jpg'" in err.cause and "000001.jpg" in err.cause and err.path == str(other)

    gap = write_frames(tmp_path / "gap", frames(6))
    (gap / "00004.jpg").unlink()
    assert "frame 00004.jpg is missing (1 of frames 1..6 missing)" in _error(gap).cause

    full = write_frames(tmp_path / "full", frames(6))
    err = _error(full, num_frames=7)
    assert "the annotation says 7 frames, the folder holds 6" in err.cause
    assert open_frame_folder(full, "{:05d}.jpg", 6).num_frames == 6

    corrupt = write_frames(tmp_path / "corrupt", frames(4))
    data = (corrupt / "00003.jpg").read_bytes()
    (corrupt / "00003.jpg").write_bytes(data[: len(data) // 2])
    err = _error(corrupt, index=2)
    assert err.path == str(corrupt / "00003.jpg") and "corrupt JPEG" in err.cause
    (corrupt / "00002.jpg").write_bytes(b"")
    assert "empty" in _error(corrupt, index=1).cause
    assert open_frame_folder(corrupt, "{:05d}.jpg").rgb([0, 3]).shape == (2, 24, 40, 3)  # the good ones still read

    sizes = write_frames(tmp_path / "sizes", frames(3))
    (sizes / "00002.jpg").write_bytes((tmp_path / "full" / "00001.jpg").read_bytes())
    Image.fromarray(frames(1, 20, 40)[0]).save(sizes / "00003.jpg")
    err = _error(sizes, index=2)
    assert "frame is 40x20, the folder's first frame 40x24" in err.cause

    with pytest.raises(VideoDecodeError, match="frame index 6 out of range"):
        open_frame_folder(full, "{:05d}.jpg").rgb([6])


def test_grey_jpeg_is_expanded_to_rgb(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.uint8), mode="L").save(tmp_path / "grey.jpg")
    image = decode_jpeg(tmp_path / "grey.jpg")
    assert image.shape == (8, 8, 3) and (image == 77).all()

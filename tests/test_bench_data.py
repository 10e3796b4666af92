import argparse
import re

from ffnlib.bench import data


def test_data_benchmark_writes_clips_reads_them_and_reports(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    data.add_arguments(parser)
    args = parser.parse_args(["--dir", str(tmp_path), "--num-videos", "2", "--num-video-frames", "20",
                              "--height", "48", "--width", "63", "--frame-size", "32", "--resize-size", "36",
                              "--passes", "1"])
    data.run(args)
    out = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("*.webm")) == ["100000.webm", "100001.webm"]
    for text in ("decode only", "16F", "4+8+16F", "cost ratio 4+8+16F / 16F: ", "goal: a 4+8+16F sample costs at most 1.10x",
                 "JPEG frames (quality 95), decoded to RGB: simplejpeg", "Pillow", "from JPEG frame folders"):
        assert text in out
    folders = sorted(p.name for p in (tmp_path / "ssv1" / "20bn-something-something-v1").iterdir())
    assert folders == ["100000", "100001"]
    assert len(list((tmp_path / "ssv1" / "20bn-something-something-v1" / "100000").glob("*.jpg"))) == 20
    jpeg_rows = [line.split() for line in out.splitlines() if line.strip().startswith("jpeg ")]
    assert [row[1] for row in jpeg_rows] == ["16F", "4+8+16F"] and all(float(row[2]) > 0 for row in jpeg_rows)
    assert re.search(r"at most 1.10x a 16F sample: (MET|NOT MET)$", out.splitlines()[-1])
    assert re.search(r"cost ratio 4\+8\+16F / 16F: \d\.\d{3} \(by CPU time: \d\.\d{3}\)$", out.splitlines()[-2])
    # (3, T, 32, 32) uint8 clips: 3 x 16 x 32 x 32 and 3 x 28 x 32 x 32 bytes; float32 would be 4 times that
    assert ("bytes a sample ships through the loader: 16F 0.05 MiB, 4+8+16F 0.08 MiB (uint8 clips; as float32 "
            "clips: 0.19, 0.33 MiB)") in out
    frames_converted = {line.split()[0]: float(line.split()[-1]) for line in out.splitlines()
                        if line.strip().startswith(("16F", "4+8+16F"))}
    assert frames_converted["16F"] == 16  # 20 frames, 16 segments of one frame: all distinct
    assert 16 < frames_converted["4+8+16F"] <= 20

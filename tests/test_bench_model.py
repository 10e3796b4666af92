import argparse
import re

import pytest

from ffnlib.bench import model


@pytest.mark.slow
def test_step_times_report_every_step_and_the_macs_ratio():
    res = model.step_times("small", batch_size=1, frame_size=16, num_classes=5, frame_counts=(2, 4),
                           steps=1, warmup=0, threads=1)
    for clock in ("wall", "cpu"):
        assert set(res[clock]) == set(res[f"{clock}_ratio"]) == {"vanilla", "ffn", "ffn_joint", "vanilla_per_count"}
        assert all(t > 0 for t in res[clock].values())
        assert res[f"{clock}_ratio"]["vanilla"] == 1.0
    # FFN's forward sees 2 + 4 frames where the vanilla step sees 4: its MACs are about 1.5 times as many
    assert 1.45 < res["macs"]["ffn"] / res["macs"]["vanilla"] < 1.6
    assert res["parameters"]["ffn"] > res["parameters"]["vanilla"]


def test_run_prints_each_step_and_the_ratio(capsys):
    parser = argparse.ArgumentParser()
    model.add_arguments(parser)
    model.run(parser.parse_args(["--batch-size", "1", "--frame-size", "16", "--num-classes", "5",
                                 "--frame-counts", "2", "4", "--steps", "1", "--warmup", "0", "--threads", "1"]))
    out = capsys.readouterr().out
    for label in ("vanilla 4F step", "FFN 2+4 step", "FFN joint backward", "vanilla 2,4F passes"):
        assert label in out
    assert re.search(r"ratio FFN / vanilla: wall \d+\.\d\d, cpu \d+\.\d\d  \(floor 1\.50 = 6/4 frames", out)

from ffnlib.bench import model


def test_step_times_report_every_step_and_the_macs_ratio():
    res = model.step_times("small", batch_size=1, frame_size=16, num_classes=5, frame_counts=(2, 4),
                           steps=1, warmup=0, threads=1)
    for clock in ("wall", "cpu"):
        assert set(res[clock]) == {"vanilla", "ffn", "vanilla_per_count"}
        assert all(t > 0 for t in res[clock].values())
    # FFN's forward sees 2 + 4 frames where the vanilla step sees 4: its MACs are about 1.5 times as many
    assert 1.45 < res["macs"]["ffn"] / res["macs"]["vanilla"] < 1.6
    assert res["parameters"]["ffn"] > res["parameters"]["vanilla"]

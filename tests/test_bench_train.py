import argparse
import json
import math

import pytest

from ffnlib.bench import report, train


def parse(*argv):
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def toy(tmp_path, *extra):
    """The benchmark at toy size on the CPU: tiny network, frames and clips, a handful of steps."""
    return parse("--arch", "small", "--batch-size", 2, "--frame-size", 32, "--steps", 2, "--warmup", 1,
                 "--device", "cpu", "--threads", 1, "--workers", 1, "--e2e-steps", 2, "--clips", 4,
                 "--clip-frames", 12, "--clip-width", 64, "--clip-height", 48, "--clip-dir", tmp_path / "clips",
                 "--clip-workers", 1, "--num-classes", 5, "--out", tmp_path / "RESULTS.md",
                 "--jsonl", tmp_path / "results.jsonl", *extra)


@pytest.mark.slow
def test_toy_run_writes_json_lines_and_a_results_table(tmp_path, capsys, torch_state):
    rows = train.run(toy(tmp_path))
    out = capsys.readouterr().out

    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [line["model"] for line in lines] == ["tsm_small", "ffn_small"] == [r["model"] for r in rows]
    vanilla, ffn = lines
    assert vanilla["frames_per_step"] == 2 * 16 and ffn["frames_per_step"] == 2 * 28
    assert ffn["frame_counts"] == [4, 8, 16] and vanilla["frame_counts"] == [16]
    for line in lines:
        assert line["device_type"] == "cpu" and line["precision"] == "fp32" and line["batch_size"] == 2
        for key in ("step_s", "step_s_nosync", "step_cpu_s", "clips_per_s", "frames_per_s", "achieved_tflops",
                    "peak_tflops", "mfu", "loader_clips_per_s", "e2e_clips_per_s", "e2e_vs_model"):
            assert math.isfinite(line[key]) and line[key] > 0, key
        assert 0 <= line["data_wait_fraction"] <= 1
        assert line["frames_per_s"] == pytest.approx(line["frames_per_step"] / line["step_s"])
        # training FLOPs = 3 x forward, forward FLOPs = 2 x MACs; MFU against the measured peak
        assert line["train_tflop_per_step"] == pytest.approx(6 * line["forward_gmacs_per_clip"] * 2 / 1e3)
        assert line["mfu"] == pytest.approx(line["achieved_tflops"] / line["peak_tflops"])
        assert line["peak_mem_gib"] is None and "max_batch" not in line  # CUDA only
        assert line["command"].startswith("python -m ffnlib.bench train") and "--batch-size 2" in line["command"]
    assert 1.7 < ffn["forward_gmacs_per_clip"] / vanilla["forward_gmacs_per_clip"] < 1.85  # 28/16 frames
    assert ffn["ffn_vs_vanilla"] > 0 and ffn["ffn_floor"] == 1.75 and "ffn_vs_vanilla" not in vanilla
    assert len(list((tmp_path / "clips").glob("*.webm"))) == 4

    results = (tmp_path / "RESULTS.md").read_text()
    assert results.startswith(report.RESULTS_HEADER)
    assert "## CPU: " in results and ffn["command"] in results
    table = [line for line in results.splitlines() if line.startswith("| ") and "small" in line]
    assert [line.split("|")[1].strip() for line in table] == ["tsm_small", "ffn_small"]
    title = next(line for line in results.splitlines() if line.startswith("| model | batch |"))
    assert len(title.split("|")) == len(table[0].split("|"))  # every row fills every column
    assert "FFN step at most 1.8x the vanilla step" in results and "not assessed (CPU" in results
    assert "tsm_small" in out and "ffn_small" in out  # the printed table


@pytest.mark.slow
def test_sweep_appends_a_section_and_reuses_the_clips(tmp_path, torch_state):
    train.run(toy(tmp_path, "--model", "ffn_small", "--no-sync-variant", "--peak", "0.05"))
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "clips").glob("*.webm")}
    rows = train.run(toy(tmp_path, "--model", "ffn_small", "--precision", "fp32,bf16", "--channels-last", "both",
                         "--no-e2e", "--peak", "0.05"))
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "clips").glob("*.webm")} == written
    assert [(r["precision"], r["channels_last"]) for r in rows] == [
        ("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]
    for row in rows:
        assert row["peak_tflops"] == 0.05 and row["peak_source"] == "given"
        assert "e2e_clips_per_s" not in row and "ffn_vs_vanilla" not in row  # no vanilla row to compare with
    results = (tmp_path / "RESULTS.md").read_text()
    assert results.count(report.RESULTS_HEADER) == 1 and results.count("## CPU: ") == 2
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1 + 4

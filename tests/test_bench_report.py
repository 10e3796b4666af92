"""The training benchmark's report (ffnlib.bench.report): every column stated once and shown in every
row, cells formatted by kind, the goals judged only on CUDA, RESULTS.md sections appended."""
import torch

from ffnlib.bench import report

ROW = {"model": "ffn_resnet50", "recipe": "ffn", "batch_size": 32, "frame_size": 224, "precision": "bf16",
       "channels_last": True, "compile": False, "step_s": 0.1234, "frames_per_s": 7261.2, "clips_per_s": 259.3,
       "mfu": 0.1712, "e2e_vs_model": 0.93, "workers": 16, "ffn_vs_vanilla": 1.7788, "max_batch": 96,
       "max_batch_peak_mem_gib": 71.25}


def test_the_results_header_explains_every_column_once():
    for column in report.COLUMNS:
        assert report.RESULTS_HEADER.count(f"\n| {column.title} | {column.meaning} |\n") == 1
    titles = [c.title for c in report.COLUMNS]
    assert len(set(titles)) == len(titles) and len({c.key for c in report.COLUMNS}) == len(titles)


def test_tables_fill_every_column_and_format_by_kind():
    markdown = report.markdown_table([ROW, {"model": "tsm_resnet50", "step_s": 1.0, "error": "out of memory at batch 512"}])
    header, rule, full, failed = markdown.splitlines()
    assert len(header.split("|")) == len(rule.split("|")) == len(full.split("|")) == len(report.COLUMNS) + 2
    cells = dict(zip([c.title for c in report.COLUMNS], [c.strip() for c in full.split("|")[1:-1]]))
    assert cells["step ms"] == "123.4" and cells["frames/s"] == "7261" and cells["clips/s"] == "259"
    assert cells["MFU"] == "17.1%" and cells["CL"] == "yes" and cells["compile"] == "no"
    assert cells["max batch"] == "96 (71.2 GiB)" and cells["FFN/van"] == "1.78" and cells["mem GiB"] == "-"
    assert "out of memory at batch 512" in failed  # in the step column, where the figure would be
    text = report.text_table([ROW]).splitlines()
    assert len(text) == 2 and len(text[0]) == len(text[1])  # right-aligned columns


def test_goals_are_judged_on_cuda_only():
    on_cpu = report.goal_lines([ROW], torch.device("cpu"))
    assert on_cpu[0] == "Goals (best FFN row: ffn_resnet50, batch 32, bf16 channels_last):"
    assert all("not assessed (CPU" in line for line in on_cpu[1:3])
    on_gpu = report.goal_lines([ROW], torch.device("cuda"))
    assert on_gpu[1].endswith("7,261: MET") and on_gpu[2].endswith("17.1%: MET")
    assert on_gpu[3].endswith("(16 workers): 93.0%: MET") and on_gpu[4].endswith("1.78x: MET")
    assert report.goal_lines([ROW], torch.device("cuda"), report.Goals(ffn_ratio=1.75))[4].endswith("NOT MET")
    assert report.goal_lines([{**ROW, "recipe": "vanilla"}], torch.device("cpu")) == []


def test_sections_are_appended_under_one_header(tmp_path):
    path = tmp_path / "RESULTS.md"
    header = {"device_type": "cpu", "device": "a CPU", "date": "2026-01-01", "command": "python -m ffnlib.bench train",
              "torch": "2.13.0", "threads": 1, "peak_tflops": 0.5, "peak_source": "given"}
    report.append_results(path, header, [ROW], ["Goals (...)"])
    report.append_results(path, {**header, "note": "second"}, [ROW], [])
    text = path.read_text()
    assert text.startswith(report.RESULTS_HEADER) and text.count("# Training throughput") == 1
    assert text.count("## CPU: a CPU, 2026-01-01") == 2 and "second" in text and text.count("| ffn_resnet50 |") == 2

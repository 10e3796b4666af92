"""Benchmarks: scripts that print figures. `python -m ffnlib.bench {data,model,train} --help`.

Three layers: `timing` (the clocks, best-of passes, interleaved rounds, the peak-memory probe, the
max-batch search: shared by every benchmark), `report` (the train benchmark's columns, tables, goals and
RESULTS.md sections), and the benchmarks (`data`, `model`, `train` with `train_options`; `clips` writes
the SSv2-like clips they read).
"""

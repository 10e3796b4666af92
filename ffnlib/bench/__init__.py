"""Benchmarks: scripts that print figures. `python -m ffnlib.bench {data,model,train} --help`."""

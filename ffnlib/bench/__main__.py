"""python -m ffnlib.bench {data,model,train} [options]: each prints its figures (never asserts on time)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

BENCHMARKS = {
    "data": "decode frames/s and samples/s for a 16-frame sample vs a 4+8+16 sample",
    "model": "forward+backward time of one FFN step (4+8+16) vs one vanilla 16F step",
    "train": "training throughput (model-only and end-to-end), MFU, peak memory",
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in BENCHMARKS:
        listing = "\n".join(f"  {name:6s} {text}" for name, text in BENCHMARKS.items())
        sys.exit(f"usage: python -m ffnlib.bench {{{','.join(BENCHMARKS)}}} [options]\n{listing}")
    name = argv[0]
    module = importlib.import_module(f"ffnlib.bench.{name}")
    parser = argparse.ArgumentParser(prog=f"python -m ffnlib.bench {name}", description=module.__doc__)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    module.run(args)


if __name__ == "__main__":
    main()

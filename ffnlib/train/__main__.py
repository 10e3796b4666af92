"""python -m ffnlib.train --config FILE.yaml [--run-dir DIR] [--set key=value ...]

Trains one model with the loop every notebook uses. FILE is a config YAML or a profile from
configs/ (its `train:` section). Under torchrun the same command runs DDP.
Exit codes: 0 done; 75 stopped by SIGTERM/SIGUSR1 with last.pt saved (requeue and run again);
1 failed (e.g. a non-finite loss: the message names the step).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from ffnlib.paths import runs_dir

from .config import TrainConfig
from .distributed import shutdown
from .loop import NonFiniteLoss, Preempted, fit


def parse_overrides(pairs: list[str]) -> dict:
    """["lr=0.1", "frame_counts=[4,16]"] -> {"lr": 0.1, "frame_counts": [4, 16]} (values read as YAML)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffnlib.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="config YAML or profile (configs/*.yaml)")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/<config name>-<recipe>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = TrainConfig.from_yaml(args.config, parse_overrides(args.overrides))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or runs_dir() / f"{args.config.stem}-{config.recipe}"
    finished_together = False  # every rank stops at the same step when it completes or is preempted
    try:
        result = fit(config, run_dir, progress=not args.no_progress)
        finished_together = True
    except Preempted as e:
        finished_together = True
        print(f"preempted: {e}", file=sys.stderr)
        return Preempted.exit_code
    except NonFiniteLoss as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutdown(wait_for_peers=finished_together)
    print(f"done: {result.run_dir} (best {result.best})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

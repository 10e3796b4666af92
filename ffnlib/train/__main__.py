"""python -m ffnlib.train --config FILE.yaml [--run-dir RUN_DIR | --model-dir DIR] [--set key=value ...]

Trains one model with the loop every notebook uses. FILE is a config YAML or a profile from configs/
(its `train:` section). The model trains into `<RUN_DIR>/models/<model_name>` (vanilla_16f, st_4f,
finetune_4f, ffn, ffn_no_td, ffn_4-16, proportional, mixed, mixed_rho0.75...: named by the config,
where the notebooks look for it; RUN_DIR defaults to runs/<FILE name>), or into `--model-dir DIR`.
Under torchrun the same command runs DDP, on one node or on several (`--nnodes N --rdzv-backend c10d
--rdzv-endpoint HOST:PORT`, every node running the same command; `batch_size` stays the global batch
unless `batch_per_rank` is set, see ffnlib.train.distributed).

Exit codes: 0 done; 75 stopped by SIGTERM/SIGUSR1 with last.pt saved (requeue and run again);
2 a problem with the input (config, data, checkpoint, folder), said in one line; 1 the training
failed (a non-finite loss: the message names the step) or a bug (with its traceback).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ffnlib.errors import UserError, one_line
from ffnlib.runs import WorkbookRun, default_run_dir

from .config import TrainConfig, parse_overrides
from .distributed import shutdown
from .loop import fit
from .signals import Preempted
from .step import NonFiniteLoss


def model_dir_of(args, config: TrainConfig) -> Path:
    if args.model_dir is not None:
        return args.model_dir
    run_dir = args.run_dir or default_run_dir(args.config)
    return WorkbookRun(run_dir).model(config.model_name).root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffnlib.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="config YAML or profile (configs/*.yaml)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run-dir", type=Path, help="workbook run folder (default: runs/<config name>); the "
                                                    "model trains into <run-dir>/models/<model_name>")
    where.add_argument("--model-dir", type=Path, help="the model's own folder instead")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable)")
    parser.add_argument("--restart", action="store_true",
                        help="delete the model folder's checkpoints, metrics and evaluations, then train afresh")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    finished_together = False  # every rank stops at the same step when it completes or is preempted
    try:
        config = TrainConfig.from_yaml(args.config, parse_overrides(args.overrides))
        result = fit(config, model_dir_of(args, config), progress=not args.no_progress, restart=args.restart)
        finished_together = True
    except Preempted as e:
        finished_together = True
        print(f"preempted: {e}", file=sys.stderr)
        return Preempted.exit_code
    except (UserError, NonFiniteLoss) as e:
        if args.debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2 if isinstance(e, UserError) else 1
    finally:
        shutdown(wait_for_peers=finished_together)
    print(f"done: {result.model_dir} (best {result.best})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

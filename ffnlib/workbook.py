"""Headless runs of the notebooks with papermill.

    python -m ffnlib.workbook run NOTEBOOK --run-dir runs/NAME [--profile P | -f params.yaml]
                                  [-p key value ...] [--set key=value ...]
    python -m ffnlib.workbook reproduce --profile PROFILE [--out runs/NAME] [--only 04 07 ...]
                                        [-p key value ...] [--set key=value ...]

A workbook run folder (`ffnlib.runs.WorkbookRun`) holds each executed notebook (the record of the
run) and, beside it, `<notebook>.params.yaml` with the parameters it ran with; models train into
`<run_dir>/models/`. `--profile` gives every notebook that declares `profile` that profile (its
training settings) and the profile's values for the notebook's own parameters (`ffnlib.profiles`);
`-p` sets a notebook parameter, `--set` a training setting on top of the profile (the notebooks'
`overrides`). A name a notebook does not declare is an error, never silently ignored.

Exit codes: 0 done; 75 a training cell stopped by SIGTERM/SIGUSR1 with last.pt saved (run again to
resume); 2 a problem with the input (a parameter, a profile, the data, a run folder), said in one
line; 1 a notebook failed otherwise (the message names the notebook and the cell).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import yaml

from ffnlib import profiles
from ffnlib.errors import ConfigError, UserError, one_line
from ffnlib.paths import write_text_atomic
from ffnlib.runs import WorkbookRun, default_run_dir
from ffnlib.train import REQUEUE_EXIT_CODE, Preempted
from ffnlib.train.config import parse_overrides, read_yaml_mapping

log = logging.getLogger(__name__)


class NotebookFailed(RuntimeError):
    """A cell raised; `notebook` and `cell` say where, `output` is the executed notebook kept for reading."""

    def __init__(self, notebook: Path, cell: int | None, ename: str, evalue: str, output: Path):
        self.notebook, self.cell, self.ename, self.output = notebook, cell, ename, output
        where = f"cell {cell}" if cell is not None else "a cell"
        text = one_line(RuntimeError(evalue))
        super().__init__(f"{notebook.name}: {where} failed: {ename}: {text} (executed notebook: {output})")

    @property
    def user_error(self) -> bool:
        """Whether the cell raised an error a user can fix (a `UserError` of ffnlib)."""
        return self.ename in _user_error_names()


def _user_error_names() -> set[str]:
    names, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


def run_notebook(notebook: str | Path, run_dir: str | Path, parameters: dict | None = None,
                 progress: bool = False) -> Path:
    """Execute `notebook` into the workbook run `run_dir` with `parameters`; return the executed notebook.

    `run_dir` is injected as the notebook's `run_dir` parameter, and `interactive=False` (unless given)
    where the notebook declares it (no widgets, no progress bars): a headless run has no front-end for
    widgets (papermill's executor can hang on one), and a saved tqdm widget reads "0%" where its state
    is not rendered. Raises NotebookFailed naming
    the notebook and the cell when a cell raises; the executed notebook is kept either way.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = profiles.find_notebook(notebook)
    run = WorkbookRun(Path(run_dir).resolve())
    declared = profiles.declared_parameters(notebook)
    parameters = dict(parameters or {})
    if "run_dir" in declared:
        parameters["run_dir"] = str(run.root)
    if "interactive" in declared:
        parameters.setdefault("interactive", False)
    undeclared = sorted(set(parameters) - set(declared))
    if undeclared:
        raise ConfigError(f"{notebook.name}: unknown parameter(s) {undeclared}; its parameters cell "
                          f"declares {sorted(declared)}")
    for name, value in parameters.items():
        profiles.check_value(name, value, notebook.stem)
    run.root.mkdir(parents=True, exist_ok=True)
    output = run.notebook(notebook.stem)
    write_text_atomic(run.parameters(notebook.stem), yaml.safe_dump(parameters, sort_keys=False))
    log.info("running %s -> %s", notebook.name, output)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                                   cwd=str(notebook.parent), progress_bar=progress, log_output=False)
    except PapermillExecutionError as e:
        raise NotebookFailed(notebook, e.exec_count, e.ename, e.evalue, output) from None
    return output


def notebook_parameters(notebook: Path, profile: dict | None, parameters: dict, overrides: dict) -> dict:
    """What a run gives `notebook`: the profile's values, then `parameters`, then the training
    `overrides` merged into its `overrides` parameter (where it declares one)."""
    declared = profiles.declared_parameters(notebook)
    params = {**(profiles.profile_parameters(profile, notebook) if profile else {}), **parameters}
    if overrides and "overrides" in declared:
        params["overrides"] = {**params.get("overrides", {}), **overrides}
    return params


def reproduce(profile: str | Path, out: str | Path, only: list[str] | None = None,
              parameters: dict | None = None, overrides: dict | None = None, progress: bool = False) -> dict:
    """Run the notebooks (all, or `only`) in phase order with `profile` into the workbook run `out`;
    stop at the first failure. `parameters` (e.g. {"eval_frames": [4, 16]}) go to every notebook that
    declares them, `overrides` (e.g. {"seed": 1}) to every notebook's training settings; a parameter no
    notebook declares is an error. Returns {notebook stem: seconds}, also written to `reproduce.json`."""
    settings = profiles.load_profile(profile)
    run = WorkbookRun(Path(out).resolve())
    chosen = sorted(profiles.find_notebook(name) for name in only) if only else profiles.notebooks()
    parameters, overrides = dict(parameters or {}), dict(overrides or {})
    declared = {nb: set(profiles.declared_parameters(nb)) for nb in chosen}
    unused = sorted(set(parameters) - set().union(*declared.values()))
    if unused:
        raise ConfigError(f"no notebook declares {unused}; check the names against the parameters cells")
    if overrides:
        profiles.train_config(settings, overrides)  # the keys checked before anything runs
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for notebook in chosen:
        t0 = time.perf_counter()
        given = {k: v for k, v in parameters.items() if k in declared[notebook]}
        run_notebook(notebook, run.root, notebook_parameters(notebook, settings, given, overrides), progress)
        timings[notebook.stem] = round(time.perf_counter() - t0, 1)
        log.info("%s done in %.0f s", notebook.stem, timings[notebook.stem])
    timings["total"] = round(time.perf_counter() - started, 1)
    write_text_atomic(run.timings, json.dumps({"profile": settings["path"], "seconds": timings}, indent=1))
    return timings


# ------------------------------------------------------------------------------------------ command line
def _parameters_file(path: Path, notebook: Path) -> tuple[dict | None, dict]:
    """A `-f` file: a profile (its name and values) or a plain YAML of the notebook's parameters."""
    data = read_yaml_mapping(path, "parameters")
    if set(data) <= set(profiles.SECTIONS):
        return profiles.load_profile(path), {}
    return None, data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffnlib.workbook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one notebook into a run folder")
    run.add_argument("notebook", help="path, name, stem or phase number (e.g. 04)")
    run.add_argument("--run-dir", required=True, type=Path)
    source = run.add_mutually_exclusive_group()
    source.add_argument("--profile", help="a profile (demo, study, smoke, ssv2_r50... or a YAML path)")
    source.add_argument("-f", "--parameters-file", type=Path, help="YAML of parameters (a profile works too)")
    rep = sub.add_parser("reproduce", help="run every notebook in order with a profile")
    rep.add_argument("--profile", required=True, help="demo, study, smoke, ssv2_r50... or a YAML path")
    rep.add_argument("--out", type=Path, help="run folder (default: runs/<profile>)")
    rep.add_argument("--only", nargs="+", help="run only these notebooks (names or phase numbers)")
    for p in (run, rep):
        p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                       help="a notebook parameter (value read as YAML); repeatable")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a training setting on top of the profile (the notebooks' overrides); repeatable")
        p.add_argument("--progress", action="store_true", help="show papermill's cell progress bar")
        p.add_argument("--debug", action="store_true", help="show the traceback of every error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        parameters = {k: _yaml_value(k, v) for k, v in args.parameter}
        overrides = parse_overrides(args.overrides)
        if args.command == "run":
            notebook = profiles.find_notebook(args.notebook)
            profile, given = None, {}
            if args.parameters_file:
                profile, given = _parameters_file(args.parameters_file, notebook)
            elif args.profile:
                profile = profiles.load_profile(args.profile)
            params = notebook_parameters(notebook, profile, {**given, **parameters}, overrides)
            print(run_notebook(notebook, args.run_dir, params, progress=args.progress))
        else:
            out = args.out or default_run_dir(args.profile)
            timings = reproduce(args.profile, out, args.only, parameters, overrides, progress=args.progress)
            print(f"done: {out} in {timings['total']:.0f} s")
    except NotebookFailed as e:
        print(f"error: {e}", file=sys.stderr)
        if e.ename == Preempted.__name__:  # a training cell saved last.pt: exit so that SLURM requeues
            return REQUEUE_EXIT_CODE
        return 2 if e.user_error else 1
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


def _yaml_value(key: str, text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"-p {key} {text!r}: the value is not YAML ({e.problem})") from None


if __name__ == "__main__":
    sys.exit(main())

"""Headless runs of the notebooks with papermill, and the parameter profiles in configs/.

    python -m ffnlib.workbook run NOTEBOOK --run-dir runs/NAME [-f params.yaml] [-p key value ...]
    python -m ffnlib.workbook reproduce --profile PROFILE --out runs/NAME [--only 04 07 ...]

A run folder holds each executed notebook (the record of the run) and, beside it,
`<notebook>.params.yaml` with the parameters it ran with; models train into `<run_dir>/models/`.

A profile (`configs/<name>.yaml`) has two sections:

    train:      TrainConfig fields, given to every notebook that declares them (and read by
                `python -m ffnlib.train --config`)
    notebooks:  by notebook name (e.g. 04_train_tsm), further parameters of that notebook

Every parameter is checked against the notebook's `parameters` cell: a name the notebook does not
declare is an error, never silently ignored.
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import sys
import time
from pathlib import Path

import yaml

from ffnlib.paths import PROJECT_ROOT, configs_dir, project_path, runs_dir, write_text_atomic

log = logging.getLogger(__name__)

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


class WorkbookError(RuntimeError):
    """A notebook that cannot be run as asked (bad parameters, missing file) or that failed."""


class NotebookFailed(WorkbookError):
    """A cell raised; `notebook` and `cell` say where, `output` is the executed notebook kept for reading."""

    def __init__(self, notebook: Path, cell: int | None, ename: str, evalue: str, output: Path):
        self.notebook, self.cell, self.ename, self.output = notebook, cell, ename, output
        where = f"cell {cell}" if cell is not None else "a cell"
        super().__init__(f"{notebook.name}: {where} failed: {ename}: {evalue} (executed notebook: {output})")


# ------------------------------------------------------------------------------------------ notebooks
def notebooks() -> list[Path]:
    """The workbook's notebooks in phase order (01_data.ipynb, 02_sampling.ipynb, ...)."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def find_notebook(name: str | Path) -> Path:
    """A notebook by path, file name, stem (04_train_tsm) or phase number (04, 4)."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    for nb in notebooks():
        if str(name) in (nb.name, nb.stem) or (str(name).isdigit() and nb.stem.startswith(f"{int(name):02d}_")):
            return nb
    raise WorkbookError(f"no notebook {name!r}; the workbook has {[nb.stem for nb in notebooks()]}")


def parameters_cell(nb, notebook: Path):
    """The one code cell of `nb` (read from `notebook`) tagged `parameters`."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise WorkbookError(f"{Path(notebook).name}: expected one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def declared_parameters(notebook: Path) -> dict:
    """The parameters a notebook declares in its `parameters` cell: name -> default value.

    Read with `ast` (every top-level `name = literal`), so comments of any shape are fine; a
    notebook without a `parameters` cell, or with a non-literal default, is an error.
    """
    import nbformat

    declared = {}
    for node in ast.parse(parameters_cell(nbformat.read(notebook, as_version=4), notebook).source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise WorkbookError(f"{notebook.name}: the parameters cell may only hold `name = literal` lines, "
                                f"found {ast.unparse(node)!r}")
        try:
            declared[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise WorkbookError(f"{notebook.name}: parameter {node.targets[0].id} is not a flat literal "
                                f"({ast.unparse(node.value)})") from None
    return declared


# ------------------------------------------------------------------------------------------ profiles
def profile_path(profile: str | Path) -> Path:
    path = Path(profile)
    if path.suffix in (".yaml", ".yml"):
        return path
    return configs_dir() / f"{profile}.yaml"


def load_profile(profile: str | Path) -> dict:
    """A profile as {"train": {...}, "notebooks": {stem: {...}}}, its train section validated."""
    from ffnlib.train import TrainConfig

    path = profile_path(profile)
    if not path.exists():
        known = sorted(p.stem for p in configs_dir().glob("*.yaml"))
        raise WorkbookError(f"{path}: no such profile; profiles in configs/: {known}")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - {"train", "notebooks"})
    if unknown:
        raise WorkbookError(f"{path}: unknown section(s) {unknown}; a profile has 'train' and 'notebooks'")
    train = data.get("train") or {}
    TrainConfig.from_dict(train, source=f"{path} (train)")  # types and names checked now, not mid-run
    by_notebook = data.get("notebooks") or {}
    stems = {nb.stem for nb in notebooks()}
    strangers = sorted(set(by_notebook) - stems)
    if strangers:
        raise WorkbookError(f"{path}: notebooks {strangers} do not exist; the workbook has {sorted(stems)}")
    return {"train": train, "notebooks": by_notebook, "path": str(path)}


def profile_parameters(profile: dict, notebook: Path, declared: set[str]) -> dict:
    """What `profile` gives `notebook`: its train fields the notebook declares, then its own section."""
    params = {k: v for k, v in profile["train"].items() if k in declared}
    own = profile["notebooks"].get(notebook.stem) or {}
    undeclared = sorted(set(own) - declared)
    if undeclared:
        raise WorkbookError(f"{profile['path']}: {notebook.stem} does not declare {undeclared} in its "
                            f"parameters cell (it declares {sorted(declared)})")
    return {**params, **own}


# ------------------------------------------------------------------------------------------ runs
def run_notebook(notebook: str | Path, run_dir: str | Path, parameters: dict | None = None,
                 progress: bool = False) -> Path:
    """Execute `notebook` into `run_dir` with `parameters`; return the executed notebook's path.

    `run_dir` is injected as the notebook's `run_dir` parameter, and `interactive=False` (unless given)
    where the notebook declares it (no widgets, no progress bars): a headless run has no front-end for
    widgets, a saved tqdm widget reads "0%" where its state is not rendered, and papermill's
    executor hung on notebook 02's `widgets.interact` cell (a figure in an Output widget) in 9 of 10
    runs on 2026-11-21, the kernel idle and papermill waiting forever. Raises NotebookFailed naming the
    notebook and the cell when a cell raises; the executed notebook is kept either way.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = find_notebook(notebook)
    run_dir = Path(run_dir).resolve()
    declared = declared_parameters(notebook)
    parameters = dict(parameters or {})
    if "run_dir" in declared:
        parameters["run_dir"] = str(run_dir)
    if "interactive" in declared:
        parameters.setdefault("interactive", False)
    undeclared = sorted(set(parameters) - set(declared))
    if undeclared:
        raise WorkbookError(f"{notebook.name}: unknown parameter(s) {undeclared}; its parameters cell "
                            f"declares {sorted(declared)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    output = run_dir / notebook.name
    write_text_atomic(run_dir / f"{notebook.stem}.params.yaml", yaml.safe_dump(parameters, sort_keys=False))
    log.info("running %s -> %s", notebook.name, output)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                                   cwd=str(notebook.parent), progress_bar=progress, log_output=False)
    except PapermillExecutionError as e:
        raise NotebookFailed(notebook, e.exec_count, e.ename, e.evalue, output) from None
    return output


def reproduce(profile: str | Path, out: str | Path, only: list[str] | None = None,
              overrides: dict | None = None, progress: bool = False) -> dict:
    """Run the notebooks (all, or `only`) in phase order with `profile` into `out`; stop at the first
    failure. `overrides` (e.g. {"seed": 1}) go to every notebook that declares them, after the
    profile; one that no notebook declares is an error. Returns {notebook stem: seconds} and writes
    it to `<out>/reproduce.json`."""
    settings = load_profile(profile)
    out = Path(out).resolve()
    chosen = sorted(find_notebook(name) for name in only) if only else notebooks()
    overrides = dict(overrides or {})
    declared = {nb: set(declared_parameters(nb)) for nb in chosen}
    unused = sorted(set(overrides) - set().union(*declared.values()))
    if unused:
        raise WorkbookError(f"no notebook declares {unused}; check the names against the parameters cells")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for notebook in chosen:
        params = profile_parameters(settings, notebook, declared[notebook])
        params.update({k: v for k, v in overrides.items() if k in declared[notebook]})
        t0 = time.perf_counter()
        run_notebook(notebook, out, params, progress=progress)
        timings[notebook.stem] = round(time.perf_counter() - t0, 1)
        log.info("%s done in %.0f s", notebook.stem, timings[notebook.stem])
    timings["total"] = round(time.perf_counter() - started, 1)
    write_text_atomic(out / "reproduce.json", json.dumps({"profile": settings["path"], "seconds": timings}, indent=1))
    return timings


def model_dir(run_dir: str | Path, name: str) -> Path:
    """Where a notebook trains model `name` (vanilla_16f, st_4f, ffn, proportional, mixed) in a run folder."""
    return Path(run_dir) / "models" / name


def resolve_run_dir(run_dir: str) -> Path:
    """A notebook's `run_dir` parameter as a folder: "" means runs/workbook (runs/smoke under FFN_SMOKE);
    a relative path is taken from the project root, as every path parameter is (`project_path`)."""
    from ffnlib import smoke

    if run_dir:
        return project_path(run_dir).resolve()
    return runs_dir() / ("smoke" if smoke.enabled() else "workbook")


# ------------------------------------------------------------------------------------------ command line
def _parse_value(text: str):
    return yaml.safe_load(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffnlib.workbook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one notebook into a run folder")
    run.add_argument("notebook", help="path, name, stem or phase number (e.g. 04)")
    run.add_argument("--run-dir", required=True, type=Path)
    run.add_argument("-f", "--parameters-file", type=Path, help="YAML of parameters (a profile works too)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                     help="one parameter (value read as YAML); repeatable")
    rep = sub.add_parser("reproduce", help="run every notebook in order with a profile")
    rep.add_argument("--profile", required=True, help="demo, smoke, ssv2_r50 or a YAML path")
    rep.add_argument("--out", type=Path, help="run folder (default: runs/<profile>)")
    rep.add_argument("--only", nargs="+", help="run only these notebooks (names or phase numbers)")
    rep.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                     help="a parameter for every notebook that declares it (e.g. -p seed 1); repeatable")
    for p in (run, rep):
        p.add_argument("--progress", action="store_true", help="show papermill's cell progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "run":
            params = {}
            notebook = find_notebook(args.notebook)
            if args.parameters_file:
                data = yaml.safe_load(args.parameters_file.read_text()) or {}
                if set(data) <= {"train", "notebooks"}:  # a profile
                    data = profile_parameters(load_profile(args.parameters_file), notebook,
                                              set(declared_parameters(notebook)))
                params.update(data)
            params.update({k: _parse_value(v) for k, v in args.parameter})
            print(run_notebook(notebook, args.run_dir, params, progress=args.progress))
        else:
            out = args.out or runs_dir() / Path(args.profile).stem
            overrides = {k: _parse_value(v) for k, v in args.parameter}
            timings = reproduce(args.profile, out, args.only, overrides, progress=args.progress)
            print(f"done: {out} in {timings['total']:.0f} s")
    except NotebookFailed as e:
        print(f"error: {e}", file=sys.stderr)
        from ffnlib.train import REQUEUE_EXIT_CODE, Preempted

        # a training cell stopped by SIGTERM/SIGUSR1 saved last.pt: exit so that SLURM requeues
        return REQUEUE_EXIT_CODE if e.ename == Preempted.__name__ else 1
    except WorkbookError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

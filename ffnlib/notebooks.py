"""Keep source notebooks clean, and refresh the outputs nbval checks.

    python -m ffnlib.notebooks clean NOTEBOOK...    strip execution counts, papermill/execution metadata
                                                    and every output but those of checked cells
    python -m ffnlib.notebooks check NOTEBOOK...    exit 1, naming each notebook that is not clean
    python -m ffnlib.notebooks refresh NOTEBOOK...  execute in smoke mode, keep checked outputs, clean
    python -m ffnlib.notebooks where                 the run folder the notebooks use by default, and
                                                    what is trained there (`make lab` says it first)

A checked cell is a code cell whose source starts with `# NBVAL_CHECK_OUTPUT`: nbval compares its
output with the stored one, so that output must not depend on the smoke switch.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
_CELL_METADATA_DROPPED = ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled")
_NOTEBOOK_METADATA_DROPPED = ("papermill", "widgets")


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK_MARK)


def clean(nb) -> nbformat.NotebookNode:
    """The notebook `nb` as it should be committed (modified in place and returned)."""
    for key in _NOTEBOOK_METADATA_DROPPED:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in _CELL_METADATA_DROPPED:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        if not is_checked(cell):
            cell.outputs = []
        for output in cell.outputs:
            if "execution_count" in output:
                output.execution_count = None
    return nb


def problems(nb) -> list[str]:
    """What keeps `nb` from being clean, one phrase each (empty when clean)."""
    found = [f"notebook metadata '{k}'" for k in _NOTEBOOK_METADATA_DROPPED if k in nb.metadata]
    for i, cell in enumerate(nb.cells):
        meta = [k for k in _CELL_METADATA_DROPPED if k in cell.metadata]
        if meta:
            found.append(f"cell {i}: metadata {meta}")
        if cell.cell_type != "code":
            continue
        if cell.execution_count is not None:
            found.append(f"cell {i}: execution count")
        if cell.outputs and not is_checked(cell):
            found.append(f"cell {i}: outputs in a cell not marked {CHECK_MARK}")
        if any(o.get("execution_count") is not None for o in cell.outputs):
            found.append(f"cell {i}: execution count in an output")
    return found


def refresh(path: Path, timeout: int = 600) -> None:
    """Execute `path` in smoke mode from its own folder, then store it clean (checked outputs kept)."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["FFN_SMOKE"] = "1"
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(clean(nb), path)


def where() -> str:
    """Where the notebooks read and write when opened as they are (`run_dir = ""`): `runs/<profile>` of
    their default profile (the smoke profile under FFN_SMOKE=1), what is trained there, and how to
    fill it or pick another folder. `make lab` prints it before starting JupyterLab."""
    from ffnlib import profiles, smoke  # lazily: `clean` and `check` need no torch
    from ffnlib.paths import PROJECT_ROOT
    from ffnlib.runs import WorkbookRun, resolve_run_dir

    defaults = sorted({declared["profile"] for declared in map(profiles.declared_parameters, profiles.notebooks())
                       if "run_dir" in declared})
    if len(defaults) != 1:
        raise ValueError(f"the notebooks that declare run_dir default to several profiles {defaults}; expected one")
    profile = smoke.PROFILE if smoke.enabled() else defaults[0]
    run = WorkbookRun(resolve_run_dir("", profile))
    shown = run.root.relative_to(PROJECT_ROOT) if run.root.is_relative_to(PROJECT_ROOT) else run.root
    why = "FFN_SMOKE=1 is set" if smoke.enabled() else "every notebook's default"
    fill = ("make demo" if run.root == (PROJECT_ROOT / "runs" / "demo").resolve()  # the Makefile's RUN
            else f"python -m ffnlib.workbook reproduce --profile {profile}")
    lines = [f"notebooks read and write {shown} (the profile {profile}, {why}; `{fill}` fills it)"]
    trained = [model.name for model in run.trained_models()]
    if trained:
        lines.append(f"  trained there: {', '.join(trained)} (notebooks 05 and 08 show them; 04 and 07 train only "
                     "what is missing)")
    else:
        lines.append(f"  nothing trained there yet: notebooks 05 and 08 need the models of 04 and 07 (`{fill}` "
                     "trains them all, or run 04 and 07 in JupyterLab first)")
    lines.append('  another folder: set run_dir in a notebook\'s parameters cell, e.g. run_dir = "runs/mine"')
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffnlib.notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["clean", "check", "refresh", "where"])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.action == "where":
        print(where())
        return 0
    if not args.notebooks:
        parser.error(f"{args.action} needs one or more notebooks")
    status = 0
    for path in args.notebooks:
        if args.action == "refresh":
            refresh(path)
            print(f"refreshed {path}")
        elif args.action == "clean":
            nb = nbformat.read(path, as_version=4)
            nbformat.write(clean(nb), path)
        else:
            found = problems(nbformat.read(path, as_version=4))
            if found:
                status = 1
                print(f"{path} is not clean (run `make clean-notebooks`): " + "; ".join(found))
    return status


if __name__ == "__main__":
    sys.exit(main())

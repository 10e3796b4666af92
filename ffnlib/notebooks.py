"""Keep source notebooks clean, and refresh the outputs nbval checks.

    python -m ffnlib.notebooks clean NOTEBOOK...    strip execution counts, papermill/execution metadata
                                                    and every output but those of checked cells
    python -m ffnlib.notebooks check NOTEBOOK...    exit 1, naming each notebook that is not clean
    python -m ffnlib.notebooks refresh NOTEBOOK...  execute in smoke mode, keep checked outputs, clean

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffnlib.notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["clean", "check", "refresh"])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
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

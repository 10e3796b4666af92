"""nbval over the notebooks (`make test`).

Source notebooks are committed clean, without execution counts, while nbval treats a cell with no
count as never run and refuses stored outputs there. Checked cells (`# NBVAL_CHECK_OUTPUT`) keep
their reference output, so each gets a count here, in memory, before nbval compares.
"""
from ffnlib.notebooks import is_checked


def pytest_collection_modifyitems(items):
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and is_checked(cell) and cell.get("execution_count") is None:
            cell.execution_count = 1
